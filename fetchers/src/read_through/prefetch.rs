//! Fetching ahead of the reads by an access profile (and, after it, the rest of the ware in the
//! background: [`ReadThrough::fill`]); a sequential reader's hints are `hint.rs`'s. With a
//! profile, the chunks it lists that the store lacks are fetched at once, by a few requests at
//! a time, below demand:
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
use std::sync::atomic::{AtomicBool, Ordering};

use ware_store::profile::{BlockKind, block_kind};

use super::*;

/// Chunks of a pack at most this far apart are read in one request (what lies between them
/// is read too): small files' chunks sit close together in walk order.
pub const MERGE_GAP: u64 = 64 << 10;

/// The smallest cap a profile's requests are cut to (see `ReadThrough::start`).
const MIN_SPAN: u64 = 256 << 10;

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

/// What holds a background job back (the fill): another prefetch to finish first, reads in
/// progress, a byte rate.
#[derive(Default)]
struct Gate {
    after: Option<Arc<Shared>>,
    rate: Option<u64>,
    below_demand: bool,
}

struct Shared {
    inner: Arc<Inner>,
    /// A fill's ware: recorded whole in the store once every chunk is there.
    ware: WareId,
    why: Why,
    gate: Gate,
    started_at: Instant,
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
        self.start(ware, what, blocks, opts, Why::Prefetch, Gate::default())
    }

    /// Starts fetching the rest of `ware` (prepared) in the background, one request at a time
    /// of up to `max_range` bytes, in pack order: only once `after` (the profile's prefetch) is
    /// done, never while a read is fetching, and at most `rate` bytes a second.
    pub fn fill(
        &self,
        ware: &WareId,
        after: Option<&Prefetch>,
        rate: Option<u64>,
        max_range: u64,
    ) -> Option<Prefetch> {
        let mut blocks = Vec::new();
        let walked = ware_store::Reader::new(&*self.inner.local).walk_ware(
            ware,
            &mut |_, _| Ok(()),
            &mut |c| {
                blocks.push(c.id()?.to_cid());
                Ok(())
            },
        );
        if let Err(e) = walked {
            tracing::warn!(ware = %ware, "fill: {e}; not filling");
            return None;
        }
        let gate = Gate {
            after: after.map(|p| p.shared.clone()),
            rate,
            below_demand: true,
        };
        let opts = PrefetchOptions {
            concurrency: 1,
            max_range,
        };
        self.start(ware, "fill", &blocks, opts, Why::Fill, gate)
    }

    fn start(
        &self,
        ware: &WareId,
        what: &str,
        blocks: &[ware_store::Cid],
        opts: PrefetchOptions,
        why: Why,
        gate: Gate,
    ) -> Option<Prefetch> {
        let inner = &self.inner;
        let mut report = PrefetchReport::default();
        // Located chunks: (place in the profile, location).
        let mut located: Vec<(usize, Location)> = Vec::new();
        // The profile's chunks that are the ware's, cached or not.
        let mut ours: Vec<ChunkId> = Vec::new();
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
                            ours.push(id);
                        } else if let Some(loc) = state.chunks.get(&id) {
                            report.chunks += 1;
                            located.push((at, loc.clone()));
                            ours.push(id);
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
                "{what}: {} of its {} blocks are not the ware's; not used",
                report.skipped,
                blocks.len()
            );
            return None;
        }
        if let Why::Prefetch = why {
            self.following.follow(ours);
            c.profile_chunks.fetch_add(report.chunks, Ordering::Relaxed);
            c.profile_cached.fetch_add(report.cached, Ordering::Relaxed);
            c.profile_skipped
                .fetch_add(report.skipped, Ordering::Relaxed);
        }
        // Requests no larger than needed to keep every worker busy twice over: a read waits
        // for the whole request its chunk is in, so a few huge ones would make the head of the
        // profile arrive late (measured: 4 requests of 4 MiB left reads waiting 10x longer
        // than 24 of 1 MiB at 10 ms RTT).
        let total: u64 = located
            .iter()
            .map(|(_, l)| u64::from(l.by_offset[l.at].stored_len))
            .sum();
        let fair = total / (2 * opts.concurrency.clamp(1, 64) as u64);
        let cap = match why {
            Why::Prefetch => fair.clamp(MIN_SPAN, opts.max_range.max(MIN_SPAN)),
            _ => opts.max_range.max(1),
        };
        let spans = spans(located, cap);
        report.planned_bytes = spans.iter().map(|s| span_bytes(run_of(&s.loc, s.n))).sum();
        tracing::info!(
            ware = %ware,
            "{what}: prefetching {} chunks in {} requests ({} cached, {} not the ware's)",
            report.chunks - report.cached,
            spans.len(),
            report.cached,
            report.skipped
        );
        let workers = opts.concurrency.clamp(1, 64).min(spans.len());
        let shared = Arc::new(Shared {
            inner: inner.clone(),
            ware: *ware,
            why,
            gate,
            started_at: Instant::now(),
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
                .name(match why {
                    Why::Fill => format!("ware-fill-{n}"),
                    _ => format!("ware-profile-{n}"),
                })
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
            if self.stop.load(Ordering::SeqCst) || !self.wait_turn() {
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
            let Some(span) = next else {
                if let Why::Fill = self.why {
                    self.complete();
                }
                return;
            };
            self.fetch(&span);
        }
    }

    /// A fill that ran out of requests: if the store now holds every chunk of the ware, the
    /// ware is recorded whole (its record last, as a pull writes it).
    fn complete(&self) {
        let local = &*self.inner.local;
        let mut whole = true;
        let walked =
            ware_store::Reader::new(local).walk_ware(&self.ware, &mut |_, _| Ok(()), &mut |c| {
                whole &= local.has_chunk(&c.id()?).unwrap_or(false);
                Ok(())
            });
        if walked.is_err() || !whole {
            return;
        }
        let record = ware_store::Reader::new(local)
            .record(&self.ware)
            .map(|mut r| {
                r.packed_at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                r
            });
        match record.and_then(|r| local.commit_ware(&self.ware, &r)) {
            Ok(()) => tracing::info!(ware = %self.ware, "fill: the ware is whole in the store"),
            Err(e) => tracing::warn!(ware = %self.ware, "fill: recording the ware whole: {e}"),
        }
    }

    /// Waits while the gate holds this job back; false when it was stopped meanwhile.
    fn wait_turn(&self) -> bool {
        let g = &self.gate;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            let pause = if g
                .after
                .as_ref()
                .is_some_and(|a| *a.running.lock().unwrap_or_else(|p| p.into_inner()) > 0)
            {
                Some(Duration::from_millis(20))
            } else if g.below_demand && self.inner.demand_inflight.load(Ordering::SeqCst) > 0 {
                Some(Duration::from_millis(5))
            } else if let Some(rate) = g.rate {
                let done = self.report.lock().unwrap_or_else(|p| p.into_inner()).bytes;
                let due = Duration::from_secs_f64(done as f64 / rate.max(1) as f64);
                let spent = self.started_at.elapsed();
                (spent < due).then(|| (due - spent).min(Duration::from_millis(100)))
            } else {
                None
            };
            match pause {
                Some(d) => std::thread::sleep(d),
                None => return true,
            }
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
        let got = inner.read_entries(&entries[0].chunk, &loc, entries, self.why);
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

/// Whether a chunk stored at `start..end` of a pack joins a request reading `head..last_end` of
/// it (the rule of the prefetch, and of the push that lays packs out for it): it starts within
/// [`MERGE_GAP`] of that request's end, and the request stays within `max_range`.
pub(crate) fn joins(head: u64, last_end: u64, start: u64, end: u64, max_range: u64) -> bool {
    start <= last_end + MERGE_GAP && end - head <= max_range
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
            if joins(head.offset, end, e.offset, e_end, max_range) {
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
