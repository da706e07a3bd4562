//! Timeouts, retries and the per-call deadline.

use std::time::Duration;

/// How a warehouse behaves when the network does not: every bound that keeps a call from
/// hanging. The defaults suit a real network; tests use deadlines of 1–2 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Time allowed to open one TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt (request sent, whole body received).
    pub request_timeout: Duration,
    /// Time allowed without receiving a single byte on an open response (a stalled server).
    /// This stands in for curl's low-speed limit: a body that trickles in keeps going, one that
    /// stops fails the attempt. (For S3 the request timeout bounds it instead: object_store
    /// exposes no per-read timeout.)
    pub low_speed_timeout: Duration,
    /// Further attempts after the first one, for connect errors, attempt timeouts, cut-off
    /// bodies, 5xx, 408 and 429. Never for 404, 403 or a failed verification.
    pub retries: u32,
    /// Wait before the first retry; it doubles each time up to `backoff_max`, and each wait is
    /// drawn at random between half and all of that ("equal jitter") so clients that failed
    /// together do not retry together.
    pub backoff_initial: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// The bound on one call, across all its attempts and waits. When it passes the call
    /// returns [`crate::Error::Timeout`], whatever the server does.
    pub deadline: Duration,
    /// How long an IPFS node may search for a block it does not have before it answers
    /// (the `timeout` parameter of the RPC API; without it a missing block hangs forever).
    /// The node's answer then becomes [`crate::Error::NotFound`]. Capped by what is left of
    /// the deadline.
    pub ipfs_block_timeout: Duration,
    /// Directory warehouses: make what a put creates readable by every user (directories
    /// 0755, files 0644), for a web server to serve. Off by default: 0700 and 0600, since a
    /// warehouse holds every byte of the wares pushed to it.
    pub shared: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            low_speed_timeout: Duration::from_secs(10),
            retries: 4,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            ipfs_block_timeout: Duration::from_secs(10),
            shared: false,
        }
    }
}

impl FetchOptions {
    /// The wait before retry number `attempt` (0 for the first retry), with jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .backoff_initial
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.backoff_max);
        let factor: f64 = rand::random_range(0.5..=1.0);
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let o = FetchOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..FetchOptions::default()
        };
        for attempt in 0..40 {
            let d = o.backoff(attempt);
            let full = (100u64 << attempt.min(16)).min(1000);
            assert!(d >= Duration::from_millis(full / 2), "{attempt}: {d:?}");
            assert!(d <= Duration::from_millis(full), "{attempt}: {d:?}");
        }
    }
}
