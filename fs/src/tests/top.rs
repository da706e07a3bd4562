//! The top of a whole-store or warehouse mount: IDs and names listed, wares typed by ID, and
//! wares a catalog lists that are shown without reading them.

use super::*;

struct Names(parking_lot::Mutex<Vec<(String, WareId)>>);

impl Catalog for Names {
    fn wares(&self) -> Vec<WareId> {
        self.0.lock().iter().map(|(_, id)| *id).collect()
    }
    fn names(&self) -> Vec<(String, WareId)> {
        self.0.lock().clone()
    }
    fn name(&self, name: &str) -> Option<WareId> {
        self.0
            .lock()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }
}

#[test]
fn whole_store_mount_shows_ids_and_names() {
    let t = build();
    let other = {
        let d = ware_test_kit::tempdir("ware-fs-unit");
        std::fs::write(d.path().join("f"), b"second ware").unwrap();
        pack_dir(&*t.store, d.path(), &PackOptions::default(), &NoProgress)
            .unwrap()
            .id
    };
    // The catalog lists only the first ware; the second still appears on lookup by ID.
    let catalog = Arc::new(Names(parking_lot::Mutex::new(vec![("base".into(), t.id)])));
    let core = Core::new(
        t.store.clone(),
        &MountRoot::All(catalog.clone()),
        None,
        Caches::new(1 << 20, 1 << 20),
    );

    let (fh, cacheable) = core.opendir(ROOT_INO).unwrap();
    assert!(!cacheable);
    let top: Vec<String> = core
        .readdir(ROOT_INO, fh, 0, true, 100)
        .unwrap()
        .into_iter()
        .map(|i| String::from_utf8(i.name).unwrap())
        .collect();
    assert_eq!(top, [".", "..", "names", &t.id.to_string()]);

    let w = ino(&core, ROOT_INO, &t.id.to_string());
    assert_eq!(ino(&core, ROOT_INO, &t.id.to_string()), w);
    let small = ino(&core, w, "small");
    assert_eq!(read_all(&core, small, 100), b"hello\n");
    let o = ino(&core, ROOT_INO, &other.to_string());
    assert_eq!(read_all(&core, ino(&core, o, "f"), 100), b"second ware");

    let names = ino(&core, ROOT_INO, "names");
    let link = ino(&core, names, "base");
    assert_eq!(
        core.readlink(link).unwrap(),
        format!("../{}", t.id).into_bytes()
    );
    assert_eq!(core.lookup(names, b"nope").unwrap_err(), Fault::NoEntry);
    assert_eq!(core.lookup(ROOT_INO, b"nope").unwrap_err(), Fault::NoEntry);
    // A well-formed ID the store does not hold.
    let absent = NodeId::of(b"not a node");
    assert_eq!(
        core.lookup(ROOT_INO, absent.to_string().as_bytes())
            .unwrap_err(),
        Fault::NoEntry
    );
    let (fh, _) = core.opendir(names).unwrap();
    let listed: HashSet<String> = core
        .readdir(names, fh, 2, false, 100)
        .unwrap()
        .into_iter()
        .map(|i| String::from_utf8(i.name).unwrap())
        .collect();
    assert_eq!(listed, HashSet::from(["base".to_string()]));
    assert_eq!(
        core.readlink(link).unwrap(),
        format!("../{}", t.id).into_bytes()
    );

    // A name pointed elsewhere is a new symlink inode with the new target; the old one keeps
    // its target (the kernel may have cached it) but is no longer found by the name.
    catalog.0.lock()[0].1 = other;
    let moved = ino(&core, names, "base");
    assert_ne!(moved, link);
    assert_eq!(
        core.readlink(moved).unwrap(),
        format!("../{other}").into_bytes()
    );
    catalog.0.lock().clear();
    assert_eq!(core.lookup(names, b"base").unwrap_err(), Fault::NoEntry);
}

/// A source that counts the nodes and chunks read from it.
struct Counting(Arc<MemStore>, std::sync::atomic::AtomicUsize);

impl Counting {
    fn reads(&self) -> usize {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl BlockSource for Counting {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.node(id)
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.chunk(id)
    }
}

#[test]
fn nothing_but_the_root_is_read_at_start() {
    let t = build();
    let src = Arc::new(Counting(t.store.clone(), Default::default()));
    let root = Reader::new(&*src).root(&t.id).unwrap();
    let core = Core::new(
        src.clone(),
        &MountRoot::Ware(t.id),
        Some(root),
        Caches::new(1 << 20, 1 << 20),
    );
    assert_eq!(src.reads(), 1);
    core.getattr(ROOT_INO).unwrap();
    assert_eq!(src.reads(), 1);
}

/// A catalog whose wares are all in a warehouse (none held whole), pushed at `at`.
struct Remote(Vec<WareId>, std::time::SystemTime);

impl Catalog for Remote {
    fn wares(&self) -> Vec<WareId> {
        self.0.clone()
    }
    fn names(&self) -> Vec<(String, WareId)> {
        Vec::new()
    }
    fn name(&self, _name: &str) -> Option<WareId> {
        None
    }
    fn unfetched(&self, id: &WareId) -> Option<std::time::SystemTime> {
        self.0.contains(id).then_some(self.1)
    }
}

/// Wares a catalog lists but the store lacks show at the top without a read: readdirplus,
/// lookup and stat of them read nothing, each a bare directory with its push time. Looking
/// inside reads the root once, under the same inode, which then shows the root's own
/// attributes; an ID the catalog does not list is read on lookup as before.
#[test]
fn listed_wares_cost_no_read_until_looked_into() {
    let t = build();
    let src = Arc::new(Counting(t.store.clone(), Default::default()));
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let core = Core::new(
        src.clone(),
        &MountRoot::All(Arc::new(Remote(vec![t.id], at))),
        None,
        Caches::new(1 << 20, 1 << 20),
    );
    let (fh, _) = core.opendir(ROOT_INO).unwrap();
    let items = core.readdir(ROOT_INO, fh, 0, true, 100).unwrap();
    let item = items
        .iter()
        .find(|i| i.name == t.id.to_string().as_bytes())
        .expect("the listed ware");
    let (attr, _) = item.attr.clone().unwrap();
    assert_eq!((attr.kind, attr.perm, attr.time), (Kind::Dir, 0o555, at));
    let w = ino(&core, ROOT_INO, &t.id.to_string());
    assert_eq!(w, item.ino);
    core.getattr(w).unwrap();
    assert_eq!(core.listxattr(w, 0).unwrap(), Xattr::Size(0));
    assert_eq!(src.reads(), 0, "the top cost a read");

    let small = ino(&core, w, "small");
    assert!(src.reads() >= 1);
    assert_eq!(read_all(&core, small, 100), b"hello\n");
    let (attr, ttl) = core.getattr(w).unwrap();
    let root = Reader::new(&*t.store).root(&t.id).unwrap();
    assert_eq!(u32::from(attr.perm), root.mode & 0o7777);
    assert_eq!(ttl, LONG_TTL);
    assert_eq!(ino(&core, ROOT_INO, &t.id.to_string()), w);
    let (fh, _) = core.opendir(w).unwrap();
    assert!(core.readdir(w, fh, 0, false, 100).unwrap().len() > 2);

    // A typed ID the catalog does not list is read on lookup; one the store lacks is absent.
    let absent = NodeId::of(b"not a node");
    assert_eq!(
        core.lookup(ROOT_INO, absent.to_string().as_bytes())
            .unwrap_err(),
        Fault::NoEntry
    );
}
