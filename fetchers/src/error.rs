//! The one error type of this crate.

use std::time::Duration;

/// What went wrong in a warehouse call. Every variant names the URL, key or CID at fault, so a
/// log line or a user-facing message says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The warehouse URL could not be understood (unknown scheme, missing bucket, bad query).
    #[error("invalid warehouse URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A key (or list prefix) is not a relative `/`-separated path without `.`, `..` or empty
    /// segments.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// A range was asked for with its end before its start.
    #[error("invalid range {start}..{end} for {url}")]
    InvalidRange {
        /// The object's URL.
        url: String,
        /// Start of the range asked for.
        start: u64,
        /// End (exclusive) of the range asked for.
        end: u64,
    },
    /// The object or block does not exist in the warehouse (HTTP 404, a missing file, or an
    /// IPFS node that could not find the block within its timeout).
    #[error("not found: {url}")]
    NotFound {
        /// The object's or block's URL.
        url: String,
    },
    /// A write to a read-only kind of warehouse (HTTP, trustless gateway).
    #[error("warehouse {url} is read-only")]
    ReadOnly {
        /// The warehouse URL.
        url: String,
    },
    /// The kind of warehouse does not offer this operation (for example objects by key on an
    /// IPFS node, or listing over plain HTTP).
    #[error("{what} is not supported by warehouse {url}")]
    Unsupported {
        /// The warehouse URL.
        url: String,
        /// The operation refused.
        what: &'static str,
    },
    /// The call did not finish within its deadline, across all retries.
    #[error("timed out after {deadline:?}: {url}")]
    Timeout {
        /// The object's or block's URL.
        url: String,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The server answered with a status that is not retried (4xx other than 404), or kept
    /// answering a retried one (5xx) until the retries ran out.
    #[error("HTTP status {status} from {url}{}", detail_suffix(.detail))]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, if any, for context.
        detail: String,
    },
    /// The connection failed, was reset, or a body ended early, until the retries ran out.
    #[error("transport error for {url}: {message}")]
    Transport {
        /// The request URL.
        url: String,
        /// What the client library said.
        message: String,
    },
    /// The server answered, but not with what was asked: a 200 with the whole object for a
    /// range request, a body of the wrong length, a wrong `Content-Range`, a malformed reply.
    #[error("bad response from {url}: {reason}")]
    BadResponse {
        /// The request URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A block's bytes do not hash to its CID. They were dropped; nothing unverified leaves
    /// this crate.
    #[error("block {cid} from {url} failed verification: {reason}")]
    Verify {
        /// The CID asked for.
        cid: String,
        /// Where the bytes came from.
        url: String,
        /// What did not match.
        reason: String,
    },
    /// A CID that this crate cannot verify (unknown multihash) or that is malformed.
    #[error("unusable CID {cid}: {reason}")]
    Cid {
        /// The CID (text form) or its bytes in hex.
        cid: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A local file system operation failed (directory warehouses).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An S3 operation failed with an error that is not one of the above.
    #[error("S3 error for {url}: {message}")]
    S3 {
        /// The object's URL.
        url: String,
        /// What object_store said.
        message: String,
    },
    /// The local store failed, or refused bytes (a malformed node, a chunk that does not
    /// match its hash).
    #[error(transparent)]
    Store(Box<ware_store::Error>),
    /// An object of the warehouse is not what its name promises (a manifest without the
    /// ware's root, an index that does not hash to its name, a chunk that does not match).
    #[error("{url}: {why}")]
    Corrupt {
        /// The object's URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The warehouse's layout is not one this ware reads: its `warefs-warehouse` marker is
    /// missing beside a ware's manifest (not a warefs warehouse), or names another version.
    #[error("warehouse {url}: {why}")]
    Layout {
        /// The warehouse URL.
        url: String,
        /// What is wrong with the marker.
        why: String,
    },
    /// A bug or a crashed worker, not a property of the warehouse.
    #[error("internal error: {0}")]
    Internal(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether this means damaged or missing data: an object that is not what its name
    /// promises, a part a manifest names that the warehouse lacks, bytes that fail their hash.
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Corrupt { .. } | Error::Verify { .. } => true,
            Error::Store(e) => e.is_corruption(),
            _ => false,
        }
    }

    /// Whether this is [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether another attempt may succeed: connection trouble, timeouts of one attempt, 5xx,
    /// 429 and cut-off bodies. A 404, a 403, bad input or a failed verification are final
    /// (verification failures are final for this warehouse; a caller may try another one).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

impl From<ware_store::Error> for Error {
    fn from(e: ware_store::Error) -> Self {
        Error::Store(Box::new(e))
    }
}
