//! What a read-through fetched from its warehouses, and why: on demand, ahead of sequential
//! readers, by a profile, by a background fill (one mount's counters, since it started).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a read-through fetched, by why (one mount's, since it started).
#[derive(Default, Debug)]
pub(super) struct Counters {
    pub(super) demand_requests: AtomicU64,
    pub(super) demand_bytes: AtomicU64,
    /// Time demand reads spent waiting on the network (their own requests and prefetches
    /// they waited for), in microseconds.
    pub(super) demand_wait_us: AtomicU64,
    pub(super) readahead_requests: AtomicU64,
    pub(super) readahead_bytes: AtomicU64,
    pub(super) prefetch_requests: AtomicU64,
    pub(super) prefetch_bytes: AtomicU64,
    pub(super) fill_requests: AtomicU64,
    pub(super) fill_bytes: AtomicU64,
    pub(super) profile_chunks: AtomicU64,
    pub(super) profile_cached: AtomicU64,
    pub(super) profile_skipped: AtomicU64,
    pub(super) profiles_refused: AtomicU64,
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
    /// The rest of a ware, in the background (`ware mount --fill`).
    Fill,
}

impl Counters {
    pub(super) fn fetched(&self, why: Why, bytes: u64) {
        let (r, b) = match why {
            Why::Demand => (&self.demand_requests, &self.demand_bytes),
            Why::Readahead => (&self.readahead_requests, &self.readahead_bytes),
            Why::Prefetch => (&self.prefetch_requests, &self.prefetch_bytes),
            Why::Fill => (&self.fill_requests, &self.fill_bytes),
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
            fill_requests: g(&self.fill_requests),
            fill_bytes: g(&self.fill_bytes),
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
    /// Requests of the background fill (`--fill`).
    #[serde(default)]
    pub fill_requests: u64,
    /// Bytes of those.
    #[serde(default)]
    pub fill_bytes: u64,
    /// Chunks the profiles used listed.
    pub profile_chunks: u64,
    /// Of those, chunks the store held already.
    pub profile_cached: u64,
    /// Blocks of the profiles used that are not the ware's (skipped).
    pub profile_skipped: u64,
    /// Profiles refused (mostly another ware's blocks).
    pub profiles_refused: u64,
}
