//! The filesystem's core: inodes, lookups, attributes, directory listings, reads and xattrs,
//! as plain methods returning `Result<_, Fault>` and plain types ([`Attr`], [`Kind`]). Nothing
//! here knows about the kernel or `fuser`: the adapters in `fuse.rs` call these methods and
//! turn their answers into fuser's types and a [`Fault`] into an errno.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use ware_store::node::{Entry, Kind};
use ware_store::{BlockSource, ChunkId, Cid, ForeignTree, NodeId, Reader, WareId};

use crate::cache::Caches;
use crate::{Catalog, MountRoot};

mod attr;
mod dir;
mod inodes;
mod nodes;
mod read;
mod siblings;
mod top;
pub(crate) use attr::Attr;
use inodes::Inodes;
use nodes::{ChunkMap, Flight};

/// The mount's root inode.
pub(crate) const ROOT_INO: u64 = 1;
/// Timeout for what never changes: a ware's entries and attributes.
pub(crate) const LONG_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Timeout for what may change while mounted: the top of an `--all` mount and its names.
pub(crate) const SHORT_TTL: Duration = Duration::from_secs(1);
/// Block size reported by `stat` and `statfs`.
const BLOCK: u32 = 4096;
/// The directory of names in an `--all` mount.
const NAMES: &[u8] = b"names";

/// How far ahead of a read (or from the start of an opened file) the source is told to
/// prefetch.
const PREFETCH_BYTES: u64 = 4 << 20;

/// Why a request failed; [`Fault::errno`] is the one place it becomes an errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No such entry (ENOENT).
    NoEntry,
    /// Not a directory (ENOTDIR).
    NotDir,
    /// Is a directory (EISDIR).
    IsDir,
    /// A write of any kind (EROFS).
    ReadOnly,
    /// No such xattr (ENODATA).
    NoData,
    /// The caller's buffer is too small (ERANGE).
    Range,
    /// Unknown file handle (EBADF).
    BadHandle,
    /// The request makes no sense for this inode (EINVAL).
    Invalid,
    /// Data missing or corrupt, or an internal fault (EIO); logged where it happened.
    Io,
}

/// Result of a core request.
pub(crate) type R<T> = Result<T, Fault>;

/// The answer to a lookup.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The name exists.
    Found {
        attr: Attr,
        attr_ttl: Duration,
        entry_ttl: Duration,
    },
    /// The name does not exist, and never will within this directory: the kernel may remember
    /// that for `ttl`.
    Absent { ttl: Duration },
}

/// One item of a directory listing.
#[derive(Debug)]
pub(crate) struct DirItem {
    pub ino: u64,
    /// Offset of the item after this one.
    pub next: u64,
    pub kind: Kind,
    pub name: Vec<u8>,
    /// Attributes and their timeout (readdirplus only).
    pub attr: Option<(Attr, Duration)>,
}

/// The bytes of a read: a range of one cached chunk, or bytes gathered from several.
pub(crate) enum ReadData {
    Slice(Arc<Vec<u8>>, std::ops::Range<usize>),
    Owned(Vec<u8>),
}

impl std::ops::Deref for ReadData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadData::Slice(d, r) => &d[r.clone()],
            ReadData::Owned(v) => v,
        }
    }
}

/// The answer to an xattr request: a size probe or the bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Xattr {
    Size(u32),
    Data(Vec<u8>),
}

/// Filesystem statistics.
pub(crate) struct Statfs {
    pub files: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// One ware shown by the mount, or one foreign tree (IPFS UnixFS).
struct WareCtx {
    /// The ware ID, or the foreign tree's root CID.
    id: Cid,
    /// A foreign tree: its entries are read through the source's [`ForeignTree`], not as
    /// ware nodes and chunks.
    foreign: bool,
    root_ino: u64,
    root: Entry,
    /// Names per hardlink group, counted by one metadata walk the first time they are needed.
    links: Mutex<Option<Arc<HashMap<u64, u32>>>>,
}

/// An inode.
struct Node {
    ino: u64,
    parent: u64,
    name: Vec<u8>,
    kind: NodeKind,
}

enum NodeKind {
    /// The top of an `--all` mount.
    AllRoot,
    /// `names/` in an `--all` mount.
    NamesDir,
    /// `names/<name>`: a symlink to `../<id>`. A name that comes to point elsewhere gets a new
    /// inode (the kernel may cache a symlink's target for the life of its inode), found once
    /// the short entry timeout sends the kernel back to look the name up again.
    NameLink(WareId),
    /// A ware at the top that its catalog lists but the store does not hold whole:
    /// a bare directory (showing `at`) until it is looked into ([`Core::entered`]).
    Listed { id: WareId, at: SystemTime },
    /// An entry of a ware (its root included).
    Ware {
        ware: Arc<WareCtx>,
        entry: Box<Entry>,
        /// The chunk map shared by this file's open handles, while any is open.
        map: Mutex<Weak<ChunkMap>>,
    },
}

/// What a directory listing holds, besides `.` and `..`.
enum Child {
    Entry(Box<Entry>),
    Ware(WareId),
    Names,
    Name(String, WareId),
}

struct Listing {
    parent: u64,
    children: Vec<Child>,
}

enum Handle {
    File {
        node: Arc<Node>,
        map: Option<Arc<ChunkMap>>,
        /// Where the last read ended: a read starting there is sequential.
        next: Arc<AtomicU64>,
    },
    Dir(Arc<Listing>),
}

/// The filesystem, without the kernel.
pub(crate) struct Core {
    src: Arc<dyn BlockSource>,
    catalog: Option<Arc<dyn Catalog>>,
    inodes: RwLock<Inodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    /// Decompressed chunks and decoded directories, perhaps shared with other mounts.
    caches: Arc<Caches>,
    /// Chunks being fetched now, so concurrent readers of one chunk share a fetch.
    inflight: Mutex<HashMap<ChunkId, Arc<Flight>>>,
    started: SystemTime,
    /// Every entry shown as owned by this uid and gid ([`crate::MountConfig::owner`]).
    owner: Option<(u32, u32)>,
    /// Told of each node and chunk read for a ware ([`crate::MountConfig::reads`]).
    reads: Option<Arc<dyn crate::ReadLog>>,
    /// Reading ahead beside the first file opened in each directory ([`siblings`]).
    siblings: siblings::Siblings,
}

fn ware_fault(ware: &Cid, path: &str, what: &str, e: &ware_store::Error) -> Fault {
    tracing::error!(%ware, path, "{what}: {e}");
    Fault::Io
}

impl Core {
    /// A core showing `root`. For [`MountRoot::Ware`], `root_entry` is the ware's root entry,
    /// already read by the caller (which is how a bad ID fails before anything is mounted).
    pub(crate) fn new(
        src: Arc<dyn BlockSource>,
        root: &MountRoot,
        root_entry: Option<Entry>,
        caches: Arc<Caches>,
    ) -> Self {
        let mut inodes = Inodes::default();
        let catalog = match root {
            MountRoot::Ware(_) | MountRoot::Foreign(_) => {
                let (id, foreign) = match root {
                    MountRoot::Foreign(cid) => (*cid, true),
                    MountRoot::Ware(id) => (id.0, false),
                    MountRoot::All(_) => unreachable!("matched above"),
                };
                let entry = root_entry.unwrap_or_else(|| Entry::new(Vec::new(), Kind::Dir));
                let ware = Arc::new(WareCtx {
                    id,
                    foreign,
                    root_ino: ROOT_INO,
                    root: entry.clone(),
                    links: Mutex::new(None),
                });
                inodes.push(0, Vec::new(), ware_kind(ware, entry));
                inodes.pinned = ROOT_INO;
                None
            }
            MountRoot::All(catalog) => {
                inodes.push(0, Vec::new(), NodeKind::AllRoot);
                let names = inodes.push(ROOT_INO, NAMES.to_vec(), NodeKind::NamesDir);
                inodes.by_name.insert((ROOT_INO, NAMES.to_vec()), names.ino);
                inodes.pinned = names.ino;
                Some(catalog.clone())
            }
        };
        Core {
            src,
            catalog,
            inodes: RwLock::new(inodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            caches,
            inflight: Mutex::new(HashMap::new()),
            started: SystemTime::now(),
            owner: None,
            reads: None,
            siblings: siblings::Siblings::default(),
        }
    }

    /// Shows every entry as owned by `owner` (uid, gid) instead of its recorded owner.
    pub(crate) fn with_owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.owner = owner;
        self
    }

    /// Tells `reads` of every node and chunk read for a ware ([`crate::ReadLog`]).
    pub(crate) fn with_reads(mut self, reads: Option<Arc<dyn crate::ReadLog>>) -> Self {
        self.reads = reads;
        self
    }

    /// Reads ahead up to `bytes` of the small files beside the first file opened in each
    /// directory, and files of up to `opened` bytes whole when opened (0: never;
    /// [`crate::MountConfig::siblings_bytes`], [`crate::MountConfig::opened_bytes`]).
    pub(crate) fn with_siblings(mut self, bytes: u64, opened: u64) -> Self {
        self.siblings = siblings::Siblings::new(bytes, opened);
        self
    }

    fn node(&self, ino: u64) -> R<Arc<Node>> {
        self.inodes.read().get(ino).ok_or(Fault::NoEntry)
    }

    /// The path of a node inside its ware, for messages.
    fn path(&self, node: &Node) -> String {
        let inodes = self.inodes.read();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut ino = node.ino;
        for _ in 0..=ware_store::node::MAX_DEPTH {
            let Some(n) = inodes.get(ino) else { break };
            let top = n.parent == n.ino
                || matches!(&n.kind, NodeKind::Ware { ware, .. } if ware.root_ino == n.ino);
            if top {
                break;
            }
            parts.push(n.name.clone());
            ino = n.parent;
        }
        let mut out = String::new();
        for p in parts.iter().rev() {
            out.push('/');
            out.push_str(&String::from_utf8_lossy(p));
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

fn ware_kind(ware: Arc<WareCtx>, entry: Entry) -> NodeKind {
    NodeKind::Ware {
        ware,
        entry: Box::new(entry),
        map: Mutex::new(Weak::new()),
    }
}

/// Inodes and attributes.
impl Core {
    /// The inode of a ware entry found in directory `parent`, made on first sight.
    fn intern(&self, parent: u64, ware: &Arc<WareCtx>, entry: Entry) -> Arc<Node> {
        let link = match (entry.kind, entry.hardlink) {
            (Kind::File, Some(g)) => Some((ware.root_ino, g)),
            _ => None,
        };
        let key = (parent, entry.name.to_vec());
        {
            let inodes = self.inodes.read();
            let found = match &link {
                Some(l) => inodes.by_link.get(l),
                None => inodes.by_name.get(&key),
            };
            if let Some(node) = found.and_then(|&ino| inodes.get(ino)) {
                return node;
            }
        }
        let mut inodes = self.inodes.write();
        let found = match &link {
            Some(l) => inodes.by_link.get(l).copied(),
            None => inodes.by_name.get(&key).copied(),
        };
        if let Some(node) = found.and_then(|ino| inodes.get(ino)) {
            return node;
        }
        let node = inodes.push(parent, key.1.clone(), ware_kind(ware.clone(), entry));
        match link {
            Some(l) => inodes.by_link.insert(l, node.ino),
            None => inodes.by_name.insert(key, node.ino),
        };
        node
    }
}

/// The requests.
impl Core {
    pub(crate) fn lookup(&self, parent: u64, name: &[u8]) -> R<Lookup> {
        let dir = self.entered(self.node(parent)?)?;
        let (node, entry_ttl) = match &dir.kind {
            NodeKind::AllRoot => {
                if name == NAMES {
                    (self.node(ROOT_INO + 1)?, SHORT_TTL)
                } else {
                    let cid = std::str::from_utf8(name)
                        .ok()
                        .and_then(|s| Cid::from_str(s).ok())
                        .ok_or(Fault::NoEntry)?;
                    let node = match WareId::from_cid(cid) {
                        Ok(id) => self.top_ware(&id)?,
                        // Not a ware ID: a foreign tree's, if the source shows such trees.
                        Err(_) if self.foreign().is_some_and(|t| t.accepts(&cid)) => {
                            self.tree_root(&cid, true)?
                        }
                        Err(_) => return Err(Fault::NoEntry),
                    };
                    (node, SHORT_TTL)
                }
            }
            NodeKind::NamesDir => {
                let name = std::str::from_utf8(name).map_err(|_| Fault::NoEntry)?;
                let catalog = self.catalog.as_ref().ok_or(Fault::NoEntry)?;
                let target = catalog.name(name).ok_or(Fault::NoEntry)?;
                (self.name_link(name, target), SHORT_TTL)
            }
            NodeKind::NameLink(_) => return Err(Fault::NotDir),
            NodeKind::Listed { .. } => return Err(Fault::Io),
            NodeKind::Ware { ware, entry, .. } => {
                if entry.kind != Kind::Dir {
                    return Err(Fault::NotDir);
                }
                let found = if ware.foreign {
                    self.foreign().ok_or(Fault::Io)?.lookup(entry, name)
                } else {
                    self.find(ware, entry, name)
                };
                match found {
                    Ok(Some(child)) => (self.intern(dir.ino, ware, child), LONG_TTL),
                    Ok(None) => return Ok(Lookup::Absent { ttl: LONG_TTL }),
                    Err(e) => {
                        let path = self.path(&dir);
                        return Err(ware_fault(&ware.id, &path, "lookup", &e));
                    }
                }
            }
        };
        let (attr, attr_ttl) = self.attr(&node)?;
        self.inodes.write().looked_up(&node);
        Ok(Lookup::Found {
            attr,
            attr_ttl,
            entry_ttl,
        })
    }

    /// The kernel dropped `n` lookups of `ino` (FUSE forget).
    pub(crate) fn forget(&self, ino: u64, n: u64) {
        self.inodes.write().forget(ino, n);
    }

    /// Inodes held now.
    pub(crate) fn inode_count(&self) -> usize {
        self.inodes.read().len()
    }

    pub(crate) fn getattr(&self, ino: u64) -> R<(Attr, Duration)> {
        self.attr(&*self.node(ino)?)
    }

    pub(crate) fn readlink(&self, ino: u64) -> R<Vec<u8>> {
        let node = self.node(ino)?;
        match &node.kind {
            NodeKind::NameLink(target) => Ok(Self::link_target(target)),
            NodeKind::Ware { entry, .. } if entry.kind == Kind::Symlink => Ok(entry
                .target
                .as_ref()
                .map(|t| t.to_vec())
                .unwrap_or_default()),
            _ => Err(Fault::Invalid),
        }
    }

    fn xattrs(&self, ino: u64) -> R<Vec<(Vec<u8>, Vec<u8>)>> {
        let node = self.node(ino)?;
        Ok(match &node.kind {
            NodeKind::Ware { entry, .. } => entry
                .xattrs
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            _ => Vec::new(),
        })
    }

    /// One xattr: its size when `size` is 0, else its value if it fits in `size` bytes.
    pub(crate) fn getxattr(&self, ino: u64, name: &[u8], size: u32) -> R<Xattr> {
        let xattrs = self.xattrs(ino)?;
        let value = xattrs
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or(Fault::NoData)?;
        sized(value, size)
    }

    /// The xattr names, each ending in NUL, with the same size rules as [`Core::getxattr`].
    pub(crate) fn listxattr(&self, ino: u64, size: u32) -> R<Xattr> {
        let mut out = Vec::new();
        for (n, _) in self.xattrs(ino)? {
            out.extend_from_slice(&n);
            out.push(0);
        }
        sized(out, size)
    }

    pub(crate) fn statfs(&self) -> Statfs {
        Statfs {
            files: self.inodes.read().len() as u64,
            bsize: BLOCK,
            namelen: ware_store::node::NAME_MAX as u32,
        }
    }
}

fn sized(value: Vec<u8>, size: u32) -> R<Xattr> {
    let len = u32::try_from(value.len()).map_err(|_| Fault::Io)?;
    if size == 0 {
        Ok(Xattr::Size(len))
    } else if len > size {
        Err(Fault::Range)
    } else {
        Ok(Xattr::Data(value))
    }
}
