//! Fetching ahead of the reads: by an access profile, and on the hints of sequential readers
//! (the next chunks of the file they read, [`BlockSource::prefetch`]). With a profile, the
//! chunks it lists that the store lacks are fetched at once, by a few requests at a time,
//! below demand:
//!
//! - The profile's chunks are located in the packs of the ware's warehouse (from the indexes
//!   fetched with its metadata). A block the ware's packs and nodes do not hold is not the
//!   ware's: a profile where those are the majority is refused, with a warning, and the mount
//!   reads on demand as without one; a few are skipped.
//! - Located chunks back to back in a pack become one range request of up to
//!   [`PrefetchOptions::max_range`] bytes; a gap of up to [`MERGE_GAP`] between two of them is
//!   read too (those chunks are verified and kept like the others), which turns a profile of
//!   many small files into few requests. Requests go in the order of the profile (a request's
//!   place is that of its first chunk in the profile).
//! - [`PrefetchOptions::concurrency`] threads take requests from that queue. A demand read
//!   never queues behind them: it fetches at once on its own thread, and waits only for a
//!   chunk a prefetch request is fetching right now (bounded by its deadline). A chunk read or
//!   being read when its turn comes is not fetched again.
//! - Every byte goes through the read path's verification (`Inner::read_entries`) before it
//!   is kept. Dropping the [`Prefetch`] stops it: no new request starts, requests in flight
//!   end within the deadline, and each chunk is written whole or not at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ware_store::profile::{BlockKind, block_kind};

use super::*;

/// Chunks of a pack at most this far apart are read in one request (what lies between them
/// is read too): small files' chunks sit close together in walk order.
pub const MERGE_GAP: u64 = 64 << 10;

/// How a profile is prefetched (settings `prefetch.concurrency`, `prefetch.max_range`).
#[derive(Clone, Copy, Debug)]
pub struct PrefetchOptions {
    /// Requests at once (1–64).
    pub concurrency: usize,
    /// Largest request, in bytes.
    pub max_range: u64,
}

impl Default for PrefetchOptions {
    fn default() -> Self {
        PrefetchOptions {
            concurrency: 12,
            max_range: 4 << 20,
        }
    }
}

/// What a read-through fetched, by why (one mount's, since it started).
#[derive(Default, Debug)]
pub(super) struct Counters {
    demand_requests: AtomicU64,
    demand_bytes: AtomicU64,
    /// Time demand reads spent waiting on the network (their own requests and prefetches
    /// they waited for), in microseconds.
    demand_wait_us: AtomicU64,
    readahead_requests: AtomicU64,
    readahead_bytes: AtomicU64,
    prefetch_requests: AtomicU64,
    prefetch_bytes: AtomicU64,
    profile_chunks: AtomicU64,
    profile_cached: AtomicU64,
    profile_skipped: AtomicU64,
    profiles_refused: AtomicU64,
}

/// Why bytes were fetched.
#[derive(Clone, Copy, Debug)]
pub(super) enum Why {
    /// A read that missed.
    Demand,
    /// The next chunks of a sequential reader (a hint of the mount).
    Readahead,
    /// A profile's chunks.
    Prefetch,
}

impl Counters {
    pub(super) fn fetched(&self, why: Why, bytes: u64) {
        let (r, b) = match why {
            Why::Demand => (&self.demand_requests, &self.demand_bytes),
            Why::Readahead => (&self.readahead_requests, &self.readahead_bytes),
            Why::Prefetch => (&self.prefetch_requests, &self.prefetch_bytes),
        };
        r.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn waited(&self, d: Duration) {
        self.demand_wait_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> FetchStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FetchStats {
            demand_requests: g(&self.demand_requests),
            demand_bytes: g(&self.demand_bytes),
            demand_wait_ms: g(&self.demand_wait_us) / 1000,
            readahead_requests: g(&self.readahead_requests),
            readahead_bytes: g(&self.readahead_bytes),
            prefetch_requests: g(&self.prefetch_requests),
            prefetch_bytes: g(&self.prefetch_bytes),
            profile_chunks: g(&self.profile_chunks),
            profile_cached: g(&self.profile_cached),
            profile_skipped: g(&self.profile_skipped),
            profiles_refused: g(&self.profiles_refused),
        }
    }
}

/// What a read-through fetched from its warehouses, by why (pack bytes, as stored).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchStats {
    /// Requests of reads that missed.
    pub demand_requests: u64,
    /// Bytes of those.
    pub demand_bytes: u64,
    /// Time reads spent waiting on the network, in milliseconds (summed over readers).
    pub demand_wait_ms: u64,
    /// Requests fetching ahead of sequential readers.
    pub readahead_requests: u64,
    /// Bytes of those.
    pub readahead_bytes: u64,
    /// Requests of profile prefetch.
    pub prefetch_requests: u64,
    /// Bytes of those.
    pub prefetch_bytes: u64,
    /// Chunks the profiles used listed.
    pub profile_chunks: u64,
    /// Of those, chunks the store held already.
    pub profile_cached: u64,
    /// Blocks of the profiles used that are not the ware's (skipped).
    pub profile_skipped: u64,
    /// Profiles refused (mostly another ware's blocks).
    pub profiles_refused: u64,
}

/// What a finished (or stopped) prefetch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrefetchReport {
    /// Chunks the profile lists.
    pub chunks: u64,
    /// Of those, chunks the store held already.
    pub cached: u64,
    /// Blocks not of the ware (skipped).
    pub skipped: u64,
    /// Bytes the requests planned cover (as stored in the packs).
    pub planned_bytes: u64,
    /// Requests made.
    pub requests: u64,
    /// Bytes fetched (as stored in the packs).
    pub bytes: u64,
    /// Requests that failed (their chunks are left to demand reads).
    pub failed: u64,
    /// Stopped before the end (unmounted).
    pub stopped: bool,
}

/// One request of a prefetch: `n` entries of a pack from the one at `loc`.
struct Span {
    loc: Location,
    n: usize,
}

struct Shared {
    inner: Arc<Inner>,
    queue: Mutex<VecDeque<Span>>,
    stop: AtomicBool,
    report: Mutex<PrefetchReport>,
    /// Workers still running, and the signal when the last ends.
    running: Mutex<usize>,
    ended: std::sync::Condvar,
}

/// A running prefetch; dropping it stops it.
pub struct Prefetch {
    shared: Arc<Shared>,
}

impl Prefetch {
    /// Waits until every request is done (or the prefetch stopped); returns what it did.
    pub fn wait(&self) -> PrefetchReport {
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while *running > 0 {
            running = self
                .shared
                .ended
                .wait(running)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(running);
        self.report()
    }

    /// True once every request is done (or the prefetch stopped).
    pub fn finished(&self) -> bool {
        *self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            == 0
    }

    /// What it did so far.
    pub fn report(&self) -> PrefetchReport {
        self.shared
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops it: no request starts after this (those in flight end within the deadline).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ReadThrough {
    /// Starts fetching the chunks of `blocks` (a profile of `ware`, in first-read order) that
    /// the store lacks; call [`ReadThrough::prepare`] first. `what` names the profile in log
    /// lines. Refused (None, with a warning) when most of its blocks are not the ware's.
    pub fn prefetch_profile(
        &self,
        ware: &WareId,
        what: &str,
        blocks: &[ware_store::Cid],
        opts: PrefetchOptions,
    ) -> Option<Prefetch> {
        let inner = &self.inner;
        let mut report = PrefetchReport::default();
        // Located chunks: (place in the profile, location).
        let mut located: Vec<(usize, Location)> = Vec::new();
        {
            let state = inner.state();
            for (at, cid) in blocks.iter().enumerate() {
                match block_kind(cid) {
                    Some(BlockKind::Chunk) => {
                        let Ok(id) = ChunkId::from_cid(cid) else {
                            report.skipped += 1;
                            continue;
                        };
                        // Cached already, or in one of the ware's packs: else not the ware's.
                        if inner.local.has_chunk(&id).unwrap_or(false) {
                            report.chunks += 1;
                            report.cached += 1;
                        } else if let Some(loc) = state.chunks.get(&id) {
                            report.chunks += 1;
                            located.push((at, loc.clone()));
                        } else {
                            report.skipped += 1;
                        }
                    }
                    Some(BlockKind::Node) => {
                        // A prepared ware's nodes are all in the store (from its manifest).
                        let known = NodeId::from_cid(*cid)
                            .ok()
                            .is_some_and(|n| inner.local.node(&n).is_ok());
                        if !known {
                            report.skipped += 1;
                        }
                    }
                    None => report.skipped += 1,
                }
            }
        }
        let c = &inner.counters;
        if report.skipped as usize * 2 > blocks.len() {
            c.profiles_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                ware = %ware,
                "profile {what}: {} of its {} blocks are not the ware's; not used",
                report.skipped,
                blocks.len()
            );
            return None;
        }
        c.profile_chunks.fetch_add(report.chunks, Ordering::Relaxed);
        c.profile_cached.fetch_add(report.cached, Ordering::Relaxed);
        c.profile_skipped
            .fetch_add(report.skipped, Ordering::Relaxed);
        let spans = spans(located, opts.max_range.max(1));
        report.planned_bytes = spans.iter().map(|s| span_bytes(run_of(&s.loc, s.n))).sum();
        tracing::info!(
            ware = %ware,
            "profile {what}: prefetching {} chunks in {} requests ({} cached, {} not the ware's)",
            report.chunks - report.cached,
            spans.len(),
            report.cached,
            report.skipped
        );
        let workers = opts.concurrency.clamp(1, 64).min(spans.len());
        let shared = Arc::new(Shared {
            inner: inner.clone(),
            queue: Mutex::new(spans.into()),
            stop: AtomicBool::new(false),
            report: Mutex::new(report),
            running: Mutex::new(0),
            ended: std::sync::Condvar::new(),
        });
        for n in 0..workers {
            let s = shared.clone();
            *shared.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
            let spawned = std::thread::Builder::new()
                .name(format!("ware-profile-{n}"))
                .spawn(move || {
                    s.work();
                    let mut running = s.running.lock().unwrap_or_else(|p| p.into_inner());
                    *running -= 1;
                    s.ended.notify_all();
                });
            if let Err(e) = spawned {
                *shared.running.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                tracing::warn!("cannot start a prefetch thread: {e}");
                break;
            }
        }
        Some(Prefetch { shared })
    }
}

impl Shared {
    fn work(&self) {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.report
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stopped = true;
                return;
            }
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(span) = next else { return };
            self.fetch(&span);
        }
    }

    /// Fetches a span, trimmed of the chunks at its ends that are cached or being fetched.
    fn fetch(&self, span: &Span) {
        let inner = &*self.inner;
        let all = run_of(&span.loc, span.n);
        let (from, to) = {
            let mut started = inner.started.lock().unwrap_or_else(|p| p.into_inner());
            let free: Vec<bool> = all
                .iter()
                .map(|e| {
                    !started.contains(&e.chunk) && !inner.local.has_chunk(&e.chunk).unwrap_or(true)
                })
                .collect();
            let Some(from) = free.iter().position(|f| *f) else {
                return;
            };
            let to = free.iter().rposition(|f| *f).map_or(from, |t| t) + 1;
            for e in &all[from..to] {
                started.insert(e.chunk);
            }
            (from, to)
        };
        let entries = &all[from..to];
        let loc = Location {
            at: span.loc.at + from,
            ..span.loc.clone()
        };
        let got = inner.read_entries(&entries[0].chunk, &loc, entries, Why::Prefetch);
        inner.mark_started(entries, false);
        inner.done.notify_all();
        let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
        r.requests += 1;
        match got {
            Ok(_) => r.bytes += span_bytes(entries),
            Err(e) => {
                r.failed += 1;
                tracing::debug!(pack = %loc.pack, "prefetch: {e}");
            }
        }
    }
}

/// The bytes a request for `entries` (back to back, or with gaps) reads.
pub(super) fn span_bytes(entries: &[PackEntry]) -> u64 {
    match (entries.first(), entries.last()) {
        (Some(f), Some(l)) => (l.offset + u64::from(l.stored_len)).saturating_sub(f.offset),
        _ => 0,
    }
}

/// The requests for `located` chunks (place in the profile, location): per pack, chunks in
/// offset order merged while the next starts at most [`MERGE_GAP`] after the last ends and the
/// request stays within `max_range`; then in the order of their first chunk's place.
fn spans(mut located: Vec<(usize, Location)>, max_range: u64) -> Vec<Span> {
    located.sort_by(|(_, a), (_, b)| {
        (a.warehouse, &*a.pack, a.at).cmp(&(b.warehouse, &*b.pack, b.at))
    });
    located
        .dedup_by(|(_, b), (_, a)| a.warehouse == b.warehouse && a.pack == b.pack && a.at == b.at);
    let mut out: Vec<(usize, Span)> = Vec::new();
    for (place, loc) in located {
        let e = &loc.by_offset[loc.at];
        if let Some((first, span)) = out.last_mut()
            && span.loc.warehouse == loc.warehouse
            && span.loc.pack == loc.pack
        {
            let head = &span.loc.by_offset[span.loc.at];
            let last = &span.loc.by_offset[span.loc.at + span.n - 1];
            let end = last.offset + u64::from(last.stored_len);
            let e_end = e.offset + u64::from(e.stored_len);
            if e.offset <= end + MERGE_GAP && e_end - head.offset <= max_range {
                span.n = loc.at - span.loc.at + 1;
                *first = (*first).min(place);
                continue;
            }
        }
        out.push((place, Span { loc, n: 1 }));
    }
    out.sort_by_key(|(place, _)| *place);
    out.into_iter().map(|(_, s)| s).collect()
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
