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
use ware_store::{BlockSource, ChunkId, Cid, ForeignTree, Reader, WareId};

use crate::cache::Caches;
use crate::{Catalog, MountRoot};

mod nodes;
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

/// An inode's attributes, as `stat` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ino: u64,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    /// Access, modification and change time alike (a ware has one time per entry).
    pub time: SystemTime,
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number in the kernel's `new_encode_dev` form.
    pub rdev: u32,
    pub blksize: u32,
}

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

/// An inode and the number of lookups the kernel holds on it.
struct Slot {
    node: Arc<Node>,
    lookups: u64,
}

/// The inodes the kernel may name. Each lookup the kernel is told of (a found entry, an entry
/// of readdirplus) counts; a `forget` takes its count back, and at zero the inode goes (a
/// later lookup makes a new one), so a long-lived mount holds about what the kernel holds,
/// not everything ever looked up. The roots are never forgotten.
#[derive(Default)]
struct Inodes {
    nodes: HashMap<u64, Slot>,
    /// The last inode number given (numbers are never reused).
    last: u64,
    /// Inodes up to this one stay: the root, and `names/` of an `--all` mount.
    pinned: u64,
    by_name: HashMap<(u64, Vec<u8>), u64>,
    /// (ware root inode, hardlink group) → inode.
    by_link: HashMap<(u64, u64), u64>,
}

/// Where an inode is indexed for interning.
enum IndexKey {
    Name((u64, Vec<u8>)),
    Link((u64, u64)),
}

impl Inodes {
    fn push(&mut self, parent: u64, name: Vec<u8>, kind: NodeKind) -> Arc<Node> {
        self.last += 1;
        let ino = self.last;
        let node = Arc::new(Node {
            ino,
            parent: if parent == 0 { ino } else { parent },
            name,
            kind,
        });
        self.nodes.insert(
            ino,
            Slot {
                node: node.clone(),
                lookups: 0,
            },
        );
        node
    }
    fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.nodes.get(&ino).map(|s| s.node.clone())
    }
    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The key `node` is interned under (none for the roots).
    fn index_key(node: &Node) -> Option<IndexKey> {
        match &node.kind {
            NodeKind::AllRoot | NodeKind::NamesDir => None,
            NodeKind::NameLink(target) => {
                let mut k = node.name.clone();
                k.push(0);
                k.extend_from_slice(target.to_string().as_bytes());
                Some(IndexKey::Name((node.parent, k)))
            }
            NodeKind::Ware { ware, entry, .. } => match (entry.kind, entry.hardlink) {
                (Kind::File, Some(g)) => Some(IndexKey::Link((ware.root_ino, g))),
                _ if node.parent == node.ino => None,
                _ => Some(IndexKey::Name((node.parent, node.name.clone()))),
            },
        }
    }

    /// The kernel was told of `node` once more. A node forgotten meanwhile (between the lookup
    /// that found it and now) comes back under its number.
    fn looked_up(&mut self, node: &Arc<Node>) {
        if let Some(s) = self.nodes.get_mut(&node.ino) {
            s.lookups += 1;
            return;
        }
        self.nodes.insert(
            node.ino,
            Slot {
                node: node.clone(),
                lookups: 1,
            },
        );
        match Self::index_key(node) {
            Some(IndexKey::Name(k)) => {
                self.by_name.entry(k).or_insert(node.ino);
            }
            Some(IndexKey::Link(k)) => {
                self.by_link.entry(k).or_insert(node.ino);
            }
            None => {}
        }
    }

    /// The kernel dropped `n` of its lookups of `ino`.
    fn forget(&mut self, ino: u64, n: u64) {
        if ino <= self.pinned {
            return;
        }
        let Some(s) = self.nodes.get_mut(&ino) else {
            return;
        };
        s.lookups = s.lookups.saturating_sub(n);
        if s.lookups > 0 {
            return;
        }
        let Some(s) = self.nodes.remove(&ino) else {
            return;
        };
        match Self::index_key(&s.node) {
            Some(IndexKey::Name(k)) if self.by_name.get(&k) == Some(&ino) => {
                self.by_name.remove(&k);
            }
            Some(IndexKey::Link(k)) if self.by_link.get(&k) == Some(&ino) => {
                self.by_link.remove(&k);
            }
            _ => {}
        }
    }
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
}

fn ware_fault(ware: &Cid, path: &str, what: &str, e: &ware_store::Error) -> Fault {
    tracing::error!(%ware, path, "{what}: {e}");
    Fault::Io
}

fn time(secs: i64, nsec: u32) -> SystemTime {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nsec))))
        .unwrap_or(UNIX_EPOCH)
}

/// The kernel's `new_encode_dev`: the form `st_rdev` travels in over FUSE.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
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
        }
    }

    /// Shows every entry as owned by `owner` (uid, gid) instead of its recorded owner.
    pub(crate) fn with_owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.owner = owner;
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

    /// The root inode of a ware in an `--all` mount, made on first lookup: the ware must have a
    /// readable root node.
    fn ware_root(&self, id: &WareId) -> R<Arc<Node>> {
        self.tree_root(&id.0, false)
    }

    /// The foreign tree a source can show, if any.
    fn foreign(&self) -> Option<&dyn ForeignTree> {
        self.src.foreign()
    }

    /// The root inode of a ware (or, with `foreign`, of a foreign tree such as an IPFS UnixFS
    /// CID) in an `--all` mount, made on first lookup: its root must be readable.
    fn tree_root(&self, id: &Cid, foreign: bool) -> R<Arc<Node>> {
        let name = id.to_string().into_bytes();
        let key = (ROOT_INO, name.clone());
        if let Some(node) = {
            let inodes = self.inodes.read();
            inodes.by_name.get(&key).and_then(|&i| inodes.get(i))
        } {
            return Ok(node);
        }
        let read = if foreign {
            match self.foreign() {
                Some(tree) => tree.root(id),
                None => return Err(Fault::NoEntry),
            }
        } else {
            Reader::new(&*self.src).root(&WareId::from_cid(*id).map_err(|_| Fault::NoEntry)?)
        };
        let root = match read {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                tracing::debug!(ware = %id, "lookup: {e}");
                return Err(Fault::NoEntry);
            }
            Err(e) => return Err(ware_fault(id, "/", "root node", &e)),
        };
        let mut inodes = self.inodes.write();
        if let Some(node) = inodes.by_name.get(&key).and_then(|&i| inodes.get(i)) {
            return Ok(node);
        }
        let ino = inodes.last + 1;
        let ware = Arc::new(WareCtx {
            id: *id,
            foreign,
            root_ino: ino,
            root: root.clone(),
            links: Mutex::new(None),
        });
        let node = inodes.push(ROOT_INO, name, ware_kind(ware, root));
        inodes.by_name.insert(key, node.ino);
        Ok(node)
    }

    fn name_link(&self, name: &str, target: WareId) -> Arc<Node> {
        let names_ino = ROOT_INO + 1;
        // Names hold no NUL, so name NUL target is a key per (name, target).
        let key = (names_ino, format!("{name}\0{target}").into_bytes());
        if let Some(node) = {
            let inodes = self.inodes.read();
            inodes.by_name.get(&key).and_then(|&i| inodes.get(i))
        } {
            return node;
        }
        let mut inodes = self.inodes.write();
        if let Some(node) = inodes.by_name.get(&key).and_then(|&i| inodes.get(i)) {
            return node;
        }
        let node = inodes.push(
            names_ino,
            name.as_bytes().to_vec(),
            NodeKind::NameLink(target),
        );
        inodes.by_name.insert(key, node.ino);
        node
    }

    fn link_target(target: &WareId) -> Vec<u8> {
        format!("../{target}").into_bytes()
    }

    fn synthetic(&self, ino: u64, kind: Kind, perm: u16, size: u64) -> Attr {
        Attr {
            ino,
            size,
            blocks: 0,
            time: self.started,
            kind,
            perm,
            nlink: 1,
            uid: self.owner.map_or(0, |o| o.0),
            gid: self.owner.map_or(0, |o| o.1),
            rdev: 0,
            blksize: BLOCK,
        }
    }

    /// A node's attributes and how long the kernel may keep them.
    fn attr(&self, node: &Node) -> R<(Attr, Duration)> {
        match &node.kind {
            NodeKind::AllRoot | NodeKind::NamesDir => Ok((
                self.synthetic(node.ino, Kind::Dir, 0o555, u64::from(BLOCK)),
                SHORT_TTL,
            )),
            NodeKind::NameLink(target) => {
                let size = Self::link_target(target).len() as u64;
                Ok((
                    self.synthetic(node.ino, Kind::Symlink, 0o777, size),
                    SHORT_TTL,
                ))
            }
            NodeKind::Ware { ware, entry, .. } => {
                let nlink = match (entry.kind, entry.hardlink) {
                    (Kind::File, Some(g)) => self.link_counts(ware)?.get(&g).copied().unwrap_or(1),
                    _ => 1,
                };
                let (size, blocks) = match entry.kind {
                    Kind::File => (entry.size, entry.size.div_ceil(u64::from(BLOCK)) * 8),
                    Kind::Dir => (u64::from(BLOCK), 8),
                    Kind::Symlink => (entry.target.as_ref().map_or(0, |t| t.len() as u64), 0),
                    _ => (0, 0),
                };
                let t = time(entry.mtime, entry.mtime_nsec);
                Ok((
                    Attr {
                        ino: node.ino,
                        size,
                        blocks,
                        time: t,
                        kind: entry.kind,
                        perm: (entry.mode & 0o7777) as u16,
                        nlink,
                        uid: self.owner.map_or(entry.uid, |o| o.0),
                        gid: self.owner.map_or(entry.gid, |o| o.1),
                        rdev: entry.rdev.map_or(0, |(ma, mi)| encode_dev(ma, mi)),
                        blksize: BLOCK,
                    },
                    LONG_TTL,
                ))
            }
        }
    }
}

/// The requests.
impl Core {
    pub(crate) fn lookup(&self, parent: u64, name: &[u8]) -> R<Lookup> {
        let dir = self.node(parent)?;
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
                        Ok(id) => self.ware_root(&id)?,
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
            NodeKind::Ware { ware, entry, .. } => {
                if entry.kind != Kind::Dir {
                    return Err(Fault::NotDir);
                }
                let found = if ware.foreign {
                    self.foreign().ok_or(Fault::Io)?.lookup(entry, name)
                } else {
                    self.find(entry, name)
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
                    let chunks = Reader::new(&*self.src).chunks(entry).map_err(|e| {
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
                    Some(m)
                }
            }
        };
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

    /// Opens a directory; returns the handle and whether the kernel may cache its listing.
    pub(crate) fn opendir(&self, ino: u64) -> R<(u64, bool)> {
        let node = self.node(ino)?;
        let (children, cacheable) = match &node.kind {
            NodeKind::AllRoot => {
                let catalog = self.catalog.as_ref().ok_or(Fault::Io)?;
                let mut wares = catalog.wares();
                wares.sort_by_key(|w| w.to_string());
                wares.dedup();
                let mut c = vec![Child::Names];
                c.extend(wares.into_iter().map(Child::Ware));
                (c, false)
            }
            NodeKind::NamesDir => {
                let catalog = self.catalog.as_ref().ok_or(Fault::Io)?;
                let mut names = catalog.names();
                names.sort_by(|a, b| a.0.cmp(&b.0));
                names.dedup_by(|a, b| a.0 == b.0);
                (
                    names
                        .into_iter()
                        .map(|(n, id)| Child::Name(n, id))
                        .collect(),
                    false,
                )
            }
            NodeKind::NameLink(_) => return Err(Fault::NotDir),
            NodeKind::Ware { ware, entry, .. } => {
                if entry.kind != Kind::Dir {
                    return Err(Fault::NotDir);
                }
                let entries = if ware.foreign {
                    self.foreign().ok_or(Fault::Io)?.list(entry)
                } else {
                    self.list(entry)
                };
                let entries = entries.map_err(|e| {
                    ware_fault(&ware.id, &self.path(&node), "listing the directory", &e)
                })?;
                (
                    entries
                        .into_iter()
                        .map(|e| Child::Entry(Box::new(e)))
                        .collect(),
                    true,
                )
            }
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let listing = Listing {
            parent: node.parent,
            children,
        };
        self.handles
            .lock()
            .insert(fh, Handle::Dir(Arc::new(listing)));
        Ok((fh, cacheable))
    }

    /// Up to `max` items of an open directory from `offset` (0 is `.`, 1 is `..`, then the
    /// children in name order); with `plus`, each with its attributes.
    pub(crate) fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        max: usize,
    ) -> R<Vec<DirItem>> {
        let listing = match self.handles.lock().get(&fh) {
            Some(Handle::Dir(l)) => l.clone(),
            _ => return Err(Fault::BadHandle),
        };
        let dir = self.node(ino)?;
        let mut out = Vec::new();
        let total = listing.children.len() as u64 + 2;
        let mut i = offset;
        while i < total && out.len() < max {
            let item = match i {
                0 | 1 => {
                    let (ino, name) = if i == 0 {
                        (dir.ino, b".".to_vec())
                    } else {
                        (listing.parent, b"..".to_vec())
                    };
                    let node = self.node(ino)?;
                    Some((node, name))
                }
                _ => {
                    let child = &listing.children[(i - 2) as usize];
                    match child {
                        Child::Entry(e) => {
                            let NodeKind::Ware { ware, .. } = &dir.kind else {
                                return Err(Fault::Io);
                            };
                            let name = e.name.to_vec();
                            Some((self.intern(dir.ino, ware, (**e).clone()), name))
                        }
                        Child::Names => Some((self.node(ROOT_INO + 1)?, NAMES.to_vec())),
                        Child::Name(n, id) => {
                            Some((self.name_link(n, *id), n.clone().into_bytes()))
                        }
                        // A listed ware whose root cannot be read is left out of the listing.
                        Child::Ware(id) => self
                            .ware_root(id)
                            .ok()
                            .map(|n| (n, id.to_string().into_bytes())),
                    }
                }
            };
            if let Some((node, name)) = item {
                let attr = if plus { Some(self.attr(&node)?) } else { None };
                // The kernel counts a lookup for each readdirplus entry but `.` and `..`
                // (the adapter forgets the ones that did not fit in its reply).
                if plus && i >= 2 {
                    self.inodes.write().looked_up(&node);
                }
                let kind = match &node.kind {
                    NodeKind::AllRoot | NodeKind::NamesDir => Kind::Dir,
                    NodeKind::NameLink(_) => Kind::Symlink,
                    NodeKind::Ware { entry, .. } => entry.kind,
                };
                out.push(DirItem {
                    ino: node.ino,
                    next: i + 1,
                    kind,
                    name,
                    attr,
                });
            }
            i += 1;
        }
        Ok(out)
    }

    pub(crate) fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
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
