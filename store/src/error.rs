//! The store's error type: every variant carries what a user needs to find the fault (the ID, the
//! path or the entry).

use std::path::PathBuf;

use crate::id::{ChunkId, NodeId};

/// Errors of the store crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Text that should have been an ID is not one.
    #[error("bad ID: {0}")]
    BadId(String),
    /// A node or chunk is not in the store (nor in any source asked).
    #[error("{what} {id} not found")]
    NotFound {
        /// "node", "chunk" or "ware".
        what: &'static str,
        /// The missing object.
        id: String,
    },
    /// A path inside a ware does not exist.
    #[error("{path}: no such entry in ware {ware}")]
    NoSuchPath {
        /// The ware looked in.
        ware: NodeId,
        /// The path asked for.
        path: String,
    },
    /// A path inside a ware goes through something that is not a directory.
    #[error("{path}: not a directory in ware {ware}")]
    NotADirectory {
        /// The ware looked in.
        ware: NodeId,
        /// The path asked for.
        path: String,
    },
    /// Stored or fetched bytes of a chunk do not match its ID.
    #[error("chunk {0} is corrupt: its bytes do not match its hash")]
    CorruptChunk(ChunkId),
    /// Stored or fetched bytes of a node do not match its ID, or do not decode.
    #[error("node {id} is corrupt: {why}")]
    CorruptNode {
        /// The node.
        id: NodeId,
        /// What is wrong.
        why: String,
    },
    /// A foreign (IPFS) block whose bytes do not match its CID, or that does not decode as
    /// what its place in the tree says it is.
    #[error("block {cid} is corrupt: {why}")]
    CorruptBlock {
        /// The block's CID.
        cid: String,
        /// What is wrong with it.
        why: String,
    },
    /// Bytes that should be a node do not decode as one.
    #[error("malformed node: {0}")]
    Malformed(String),
    /// Input to pack is refused (hostile or unsupported), naming the entry.
    #[error("{entry}: {why}")]
    BadInput {
        /// The offending entry (a path in the source tree or archive).
        entry: String,
        /// Why it is refused.
        why: String,
    },
    /// A name that is not a valid name (its text cut to 64 characters, escaped).
    #[error("name {name}: {why}")]
    BadName {
        /// The name as given, quoted and cut short.
        name: String,
        /// Why it is refused.
        why: String,
    },
    /// Unpack refused or failed at a path in the target.
    #[error("unpack {path}: {why}")]
    Unpack {
        /// The path in the target directory.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The store is held by another process.
    #[error("store {dir} is in use by another process{holder}; stop it or use another --store")]
    Busy {
        /// The store directory.
        dir: PathBuf,
        /// " (pid N)" when known.
        holder: String,
    },
    /// An ID names a node of the store that is not a ware's root (a directory or file node
    /// inside some ware): it is no ware, and nothing is damaged.
    #[error(
        "{id} is a {kind} node, not a ware; name it as WARE/PATH inside the ware that holds it"
    )]
    NotAWare {
        /// The node asked for as a ware.
        id: NodeId,
        /// "directory" or "file".
        kind: &'static str,
    },
    /// A read-only command was pointed at a directory that holds no store (a typo in
    /// `--store`, say): nothing is created.
    #[error("no store at {}", dir.display())]
    NoStore {
        /// The directory given.
        dir: PathBuf,
    },
    /// The store directory is not a usable store.
    #[error("store {dir}: {why}")]
    BadStore {
        /// The store directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The database reported an error.
    #[error("store database: {0}")]
    Db(String),
    /// A remote source (a warehouse) could not deliver in time or at all: the message names
    /// the URL and what failed.
    #[error("{0}")]
    Remote(String),
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Refuses an input entry with a reason.
    pub fn bad_input(entry: impl Into<String>, why: impl Into<String>) -> Self {
        Error::BadInput {
            entry: entry.into(),
            why: why.into(),
        }
    }

    /// Refuses a name, quoting at most its first 64 characters.
    pub fn bad_name(name: &str, why: impl Into<String>) -> Self {
        let shown: String = name.chars().take(64).collect();
        let more = if shown.len() < name.len() { "…" } else { "" };
        Error::BadName {
            name: format!("{shown:?}{more}"),
            why: why.into(),
        }
    }

    /// True for errors that mean "what was typed is not well formed" (exit 2: a bad ID or
    /// name), as opposed to absent or damaged.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::BadId(_) | Error::BadName { .. })
    }

    /// True for errors that mean "this data is damaged" (as opposed to absent or refused).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::CorruptChunk(_) | Error::CorruptNode { .. } | Error::CorruptBlock { .. }
        )
    }

    /// True for errors that mean "no such thing".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::NoSuchPath { .. }
                | Error::NotADirectory { .. }
                | Error::NotAWare { .. }
                | Error::NoStore { .. }
        )
    }
}
