//! Unit tests of the core over a `MemStore`, without a kernel.

use std::collections::HashSet;
use std::sync::Arc;

use ware_store::node::Kind;
use ware_store::pack::{NoProgress, PackOptions, pack_dir};
use ware_store::{BlockSource, ChunkId, MemStore, NodeId, Reader, WareId};

use crate::core::{Core, Fault, LONG_TTL, Lookup, ROOT_INO, Xattr};
use crate::{Caches, Catalog, MountRoot};

pub(crate) use ware_test_kit::noise;

mod top;

struct Tree {
    store: Arc<MemStore>,
    id: WareId,
    big: Vec<u8>,
    xattrs: bool,
}

/// The packed test tree, built once for all the tests here (the source is removed after
/// packing: the store holds everything).
fn build() -> &'static Tree {
    static TREE: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();
    TREE.get_or_init(make)
}

fn make() -> Tree {
    let dir = ware_test_kit::tempdir("ware-fs-unit");
    let root = dir.path();
    let big = noise(7, 3 << 20);
    std::fs::write(root.join("big"), &big).unwrap();
    std::fs::write(root.join("small"), b"hello\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/other"), noise(9, 200_000)).unwrap();
    std::fs::hard_link(root.join("sub/other"), root.join("link2")).unwrap();
    std::os::unix::fs::symlink("sub/other", root.join("sym")).unwrap();
    std::fs::create_dir(root.join("many")).unwrap();
    for i in 0..20_000 {
        std::fs::write(
            root.join(format!("many/entry-with-a-longish-name-{i:06}")),
            b"",
        )
        .unwrap();
    }
    let xattrs = rustix::fs::setxattr(
        root.join("small").as_path(),
        "user.test",
        b"value-1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let store = Arc::new(MemStore::new());
    let id = pack_dir(&*store, root, &PackOptions::default(), &NoProgress)
        .unwrap()
        .id;
    drop(dir);
    Tree {
        store,
        id,
        big,
        xattrs,
    }
}

fn core_over(src: Arc<dyn BlockSource>, id: WareId) -> Core {
    let root = Reader::new(&*src).root(&id).unwrap();
    Core::new(
        src,
        &MountRoot::Ware(id),
        Some(root),
        Caches::new(8 << 20, 1 << 20),
    )
}

fn ino(core: &Core, parent: u64, name: &str) -> u64 {
    match core.lookup(parent, name.as_bytes()).unwrap() {
        Lookup::Found { attr, .. } => attr.ino,
        Lookup::Absent { .. } => panic!("{name} absent"),
    }
}

fn read_all(core: &Core, ino: u64, step: u32) -> Vec<u8> {
    let fh = core.open(ino, false).unwrap();
    let mut out = Vec::new();
    loop {
        let d = core.read(fh, out.len() as u64, step).unwrap().to_vec();
        if d.is_empty() {
            break;
        }
        out.extend_from_slice(&d);
    }
    core.release(fh);
    out
}

#[test]
fn core_serves_the_packed_tree() {
    let t = build();
    let core = core_over(t.store.clone(), t.id);

    // Contents, read with request sizes that straddle chunk boundaries in every way.
    let big = ino(&core, ROOT_INO, "big");
    for step in [4096, 100_000, 1 << 20] {
        assert!(read_all(&core, big, step) == t.big, "step {step}");
    }
    let fh = core.open(big, false).unwrap();
    for (off, len) in [
        (0u64, 10u32),
        (65_535, 3),
        (1 << 20, 300_000),
        (3 << 20, 10),
    ] {
        let got = core.read(fh, off, len).unwrap().to_vec();
        let s = (off as usize).min(t.big.len());
        let e = (s + len as usize).min(t.big.len());
        assert_eq!(got, &t.big[s..e], "read at {off}");
    }
    core.release(fh);
    let small = ino(&core, ROOT_INO, "small");
    assert_eq!(read_all(&core, small, 2), b"hello\n");
    assert_eq!(read_all(&core, ino(&core, ROOT_INO, "empty"), 4096), b"");

    // Attributes and stable inode numbers.
    let (attr, ttl) = core.getattr(big).unwrap();
    assert_eq!(
        (attr.size, attr.nlink, ttl),
        (t.big.len() as u64, 1, LONG_TTL)
    );
    assert_eq!(ino(&core, ROOT_INO, "big"), big);

    // Hardlinks share one inode and count their names.
    let sub = ino(&core, ROOT_INO, "sub");
    let a = ino(&core, sub, "other");
    let b = ino(&core, ROOT_INO, "link2");
    assert_eq!(a, b);
    assert_eq!(core.getattr(a).unwrap().0.nlink, 2);

    // Symlinks, misses, wrong kinds, writes.
    let sym = ino(&core, ROOT_INO, "sym");
    assert_eq!(core.readlink(sym).unwrap(), b"sub/other");
    assert!(matches!(
        core.lookup(ROOT_INO, b"nope").unwrap(),
        Lookup::Absent { .. }
    ));
    assert_eq!(core.lookup(big, b"x").unwrap_err(), Fault::NotDir);
    assert_eq!(core.open(big, true).unwrap_err(), Fault::ReadOnly);
    assert_eq!(core.open(sub, false).unwrap_err(), Fault::IsDir);
    assert_eq!(core.readlink(big).unwrap_err(), Fault::Invalid);
    assert!(matches!(core.read(999, 0, 1), Err(Fault::BadHandle)));
    assert_eq!(core.getattr(10_000_000).unwrap_err(), Fault::NoEntry);

    // Xattrs: size probe, exact buffer, too small a buffer, missing name.
    if ware_test_kit::require(
        t.xattrs,
        "xattr checks: the scratch directory has no user xattrs",
    ) {
        assert_eq!(
            core.getxattr(small, b"user.test", 0).unwrap(),
            Xattr::Size(7)
        );
        assert_eq!(
            core.getxattr(small, b"user.test", 7).unwrap(),
            Xattr::Data(b"value-1".to_vec())
        );
        assert_eq!(
            core.getxattr(small, b"user.test", 3).unwrap_err(),
            Fault::Range
        );
        assert_eq!(core.listxattr(small, 0).unwrap(), Xattr::Size(10));
        assert_eq!(
            core.listxattr(small, 100).unwrap(),
            Xattr::Data(b"user.test\0".to_vec())
        );
        assert_eq!(core.listxattr(small, 5).unwrap_err(), Fault::Range);
    }
    assert_eq!(
        core.getxattr(big, b"user.test", 0).unwrap_err(),
        Fault::NoData
    );
    assert_eq!(core.listxattr(big, 0).unwrap(), Xattr::Size(0));
}

#[test]
fn large_directories_page_by_offset() {
    let t = build();
    let core = core_over(t.store.clone(), t.id);
    let many = ino(&core, ROOT_INO, "many");
    let (fh, cacheable) = core.opendir(many).unwrap();
    assert!(cacheable);
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let items = core.readdir(many, fh, offset, offset % 2 == 0, 97).unwrap();
        let Some(last) = items.last() else { break };
        offset = last.next;
        for it in items {
            names.push(String::from_utf8(it.name).unwrap());
        }
    }
    core.releasedir(fh);
    assert_eq!(names.len(), 20_002);
    assert_eq!((names[0].as_str(), names[1].as_str()), (".", ".."));
    let expected: Vec<String> = (0..20_000)
        .map(|i| format!("entry-with-a-longish-name-{i:06}"))
        .collect();
    assert_eq!(names[2..], expected[..]);
    // The directory really was split into several nodes.
    let dir = Reader::new(&*t.store)
        .resolve(&t.id, b"many")
        .unwrap()
        .dir_id()
        .unwrap();
    let node = ware_store::node::DirNode::decode(&dir, &t.store.node(&dir).unwrap()).unwrap();
    assert!(node.parts.len() > 1, "expected a split directory");
    // Lookups through the split parts find every name.
    for i in [0, 1, 9_999, 19_999] {
        ino(&core, many, &format!("entry-with-a-longish-name-{i:06}"));
    }
}

/// A source that reports one chunk as corrupt (or missing) and serves everything else.
struct Damaged {
    inner: Arc<MemStore>,
    bad: ChunkId,
    missing: bool,
}

impl BlockSource for Damaged {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.inner.node(id)
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        if *id == self.bad {
            if self.missing {
                return Err(ware_store::Error::NotFound {
                    what: "chunk",
                    id: id.to_string(),
                });
            }
            return Err(ware_store::Error::CorruptChunk(*id));
        }
        self.inner.chunk(id)
    }
}

#[test]
fn a_bad_chunk_fails_its_file_only() {
    let t = build();
    let entry = Reader::new(&*t.store).resolve(&t.id, b"big").unwrap();
    let chunks = Reader::new(&*t.store).chunks(&entry).unwrap();
    let bad = chunks[chunks.len() / 2].id().unwrap();
    for missing in [false, true] {
        let src = Arc::new(Damaged {
            inner: t.store.clone(),
            bad,
            missing,
        });
        let core = core_over(src, t.id);
        let big = ino(&core, ROOT_INO, "big");
        let fh = core.open(big, false).unwrap();
        assert_eq!(&*core.read(fh, 0, 4096).unwrap(), &t.big[..4096]);
        let mut fault = None;
        let mut off = 0u64;
        while off < t.big.len() as u64 {
            match core.read(fh, off, 1 << 17) {
                Ok(d) => off += d.len() as u64,
                Err(e) => {
                    fault = Some(e);
                    break;
                }
            }
        }
        assert_eq!(fault, Some(Fault::Io));
        let sub = ino(&core, ROOT_INO, "sub");
        let other = ino(&core, sub, "other");
        assert_eq!(read_all(&core, other, 1 << 17), noise(9, 200_000));
    }
}

#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::Mount>();
    send_sync::<crate::MountRoot>();
    send_sync::<crate::FsError>();
}

/// Collects every tracing event as text (fields included), for checking what gets logged.
struct Capture(Arc<parking_lot::Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut f);
        self.0.lock().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_bad_chunk_is_logged_with_its_id_and_path() {
    let t = build();
    let entry = Reader::new(&*t.store).resolve(&t.id, b"sub/other").unwrap();
    let bad = Reader::new(&*t.store).chunks(&entry).unwrap()[0]
        .id()
        .unwrap();
    let src = Arc::new(Damaged {
        inner: t.store.clone(),
        bad,
        missing: false,
    });
    let core = core_over(src, t.id);
    let sub = ino(&core, ROOT_INO, "sub");
    let other = ino(&core, sub, "other");
    let fh = core.open(other, false).unwrap();
    let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let r = tracing::subscriber::with_default(Capture(events.clone()), || core.read(fh, 0, 4096));
    assert!(matches!(r, Err(Fault::Io)));
    let events = events.lock();
    let hit = events.iter().find(|e| e.starts_with("ERROR"));
    let hit = hit.unwrap_or_else(|| panic!("no error logged: {events:?}"));
    for needle in [bad.to_string(), t.id.to_string(), "/sub/other".to_string()] {
        assert!(hit.contains(&needle), "{needle} not in {hit}");
    }
}

#[test]
fn concurrent_reads_of_one_chunk_fetch_it_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counting(Arc<MemStore>, AtomicUsize);
    impl BlockSource for Counting {
        fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
            self.0.node(id)
        }
        fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.chunk(id)
        }
    }
    let t = build();
    let src = Arc::new(Counting(t.store.clone(), AtomicUsize::new(0)));
    let core = Arc::new(core_over(src.clone(), t.id));
    let big = ino(&core, ROOT_INO, "big");
    let fh = core.open(big, false).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let core = core.clone();
            std::thread::spawn(move || core.read(fh, i * 512, 512).map(|d| d.to_vec()))
        })
        .collect();
    for (i, th) in threads.into_iter().enumerate() {
        let got = th.join().unwrap().unwrap();
        assert_eq!(got, &t.big[i * 512..(i + 1) * 512]);
    }
    assert_eq!(
        src.1.load(Ordering::SeqCst),
        1,
        "the first chunk was fetched more than once"
    );
}

#[test]
fn fifos_and_devices_keep_their_kind() {
    let dir = ware_test_kit::tempdir("ware-fs-unit");
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let store = Arc::new(MemStore::new());
    let opts = PackOptions {
        devices: ware_store::pack::DeviceFilter::Keep,
        ..PackOptions::default()
    };
    let id = pack_dir(&*store, dir.path(), &opts, &NoProgress)
        .unwrap()
        .id;
    let core = core_over(store, id);
    let (attr, _) = core.getattr(ino(&core, ROOT_INO, "fifo")).unwrap();
    assert_eq!((attr.kind, attr.perm), (Kind::Fifo, 0o640));
}

/// Lookups count, forgets take them back, and at zero an inode goes: a later lookup makes a
/// new one, with the same contents. A hardlinked file is one inode under both names, counted
/// once per lookup of either. The root is never forgotten.
#[test]
fn forgotten_inodes_go_and_come_back_as_new_ones() {
    let t = build();
    let core = core_over(t.store.clone(), t.id);
    let base = core.inode_count();
    let small = ino(&core, ROOT_INO, "small");
    assert_eq!(ino(&core, ROOT_INO, "small"), small);
    assert_eq!(core.inode_count(), base + 1);
    core.forget(small, 1);
    assert_eq!(core.inode_count(), base + 1, "one lookup is still held");
    core.forget(small, 1);
    assert_eq!(core.inode_count(), base);
    let again = ino(&core, ROOT_INO, "small");
    assert_ne!(again, small, "a forgotten inode number came back");
    assert_eq!(read_all(&core, again, 4096), b"hello\n");

    let sub = ino(&core, ROOT_INO, "sub");
    let other = ino(&core, sub, "other");
    let link2 = ino(&core, ROOT_INO, "link2");
    assert_eq!(other, link2, "hardlinks share an inode");
    core.forget(other, 1);
    assert_eq!(
        ino(&core, ROOT_INO, "link2"),
        link2,
        "one lookup of the pair remains"
    );
    core.forget(link2, 2);
    assert_ne!(ino(&core, sub, "other"), other);

    core.forget(ROOT_INO, 1_000);
    assert!(core.getattr(ROOT_INO).is_ok(), "the root was forgotten");
}
