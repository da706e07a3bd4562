//! Real FUSE mounts of packed trees: every byte and stat field against the source, mmap, exec,
//! EROFS, a corrupt chunk, the whole-store view, and unmounting.
//!
//! They need root and /dev/fuse: without them each test prints why and returns, except under
//! CI (`CI=true`), where that is a failure. Every mount is held by a `Mount`, whose drop
//! unmounts even when an assertion fails.
#![allow(unsafe_code)] // system calls to set up and check what the test needs

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ware_fs::{Catalog, FsError, MountConfig, MountRoot, mount, ware_mounts};
use ware_store::pack::{MtimeFilter, NoProgress, PackOptions, pack_dir};
use ware_store::{BlockSource, ChunkId, MemStore, NodeId, Reader, WareId};
use ware_test_kit::{can_mount, noise, rootfs, tempdir};

fn tmp() -> tempfile::TempDir {
    tempdir("ware-fs-test")
}

/// The test tree; returns whether user xattrs could be set.
fn make_tree(root: &Path) -> bool {
    fs::write(root.join("big"), noise(1, 5 << 20)).unwrap();
    fs::write(root.join("medium"), noise(2, 1_500_000)).unwrap();
    fs::write(root.join("small"), b"hello\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/deep"), noise(3, 300_000)).unwrap();
    fs::hard_link(root.join("a/b/c/deep"), root.join("a/hard1")).unwrap();
    fs::hard_link(root.join("a/b/c/deep"), root.join("hard2")).unwrap();
    fs::write(root.join("tiny-linked"), b"x").unwrap();
    fs::hard_link(root.join("tiny-linked"), root.join("a/tiny-linked2")).unwrap();
    std::os::unix::fs::symlink("a/b/c/deep", root.join("sym")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    fs::write(root.join("private"), b"secret").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(root.join("setuid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("owned"), b"owned").unwrap();
    std::os::unix::fs::chown(root.join("owned"), Some(1234), Some(5678)).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9-latin1")), b"bytes").unwrap();
    fs::copy("/bin/true", root.join("true")).unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..20_000 {
        fs::write(root.join(format!("many/file-number-{i:05}")), b"").unwrap();
    }
    rustix::fs::setxattr(
        root.join("small"),
        "user.colour",
        b"blue",
        rustix::fs::XattrFlags::empty(),
    )
    .and_then(|()| {
        rustix::fs::setxattr(
            root.join("a"),
            "user.empty",
            b"",
            rustix::fs::XattrFlags::empty(),
        )
    })
    .is_ok()
}

fn pack(store: &MemStore, root: &Path) -> WareId {
    let opts = PackOptions {
        mtime: MtimeFilter::Keep,
        ..PackOptions::default()
    };
    pack_dir(store, root, &opts, &NoProgress).unwrap().id
}

fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap();
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).unwrap();
        // The size probe (an empty buffer) first, as getfattr does.
        let size = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut [0u8; 0][..]).unwrap();
        let mut value = vec![0u8; size];
        let got = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]).unwrap();
        assert_eq!(got, size);
        out.push((name.to_vec(), value));
    }
    out.sort();
    out
}

/// Walks `src` and checks that `mnt` shows the same entries, bytes and stat fields.
fn compare(src: &Path, mnt: &Path, with_xattrs: bool) -> usize {
    let mut seen = 0;
    let mut links: HashMap<u64, u64> = HashMap::new(); // source ino → mount ino
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (s, m) = (src.join(&rel), mnt.join(&rel));
        let names = |p: &Path| -> BTreeSet<Vec<u8>> {
            fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().as_bytes().to_vec())
                .collect()
        };
        assert_eq!(names(&s), names(&m), "listing of {}", rel.display());
        for e in fs::read_dir(&s).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let (sp, mp) = (src.join(&r), mnt.join(&r));
            let (a, b) = (
                fs::symlink_metadata(&sp).unwrap(),
                fs::symlink_metadata(&mp).unwrap(),
            );
            let what = r.display().to_string();
            assert_eq!(a.mode(), b.mode(), "mode of {what}");
            assert_eq!((a.uid(), a.gid()), (b.uid(), b.gid()), "owner of {what}");
            assert_eq!(
                (a.mtime(), a.mtime_nsec()),
                (b.mtime(), b.mtime_nsec()),
                "mtime of {what}"
            );
            if with_xattrs {
                assert_eq!(xattrs(&sp), xattrs(&mp), "xattrs of {what}");
            }
            let ft = a.file_type();
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_symlink() {
                assert_eq!(a.size(), b.size(), "size of {what}");
                assert_eq!(fs::read_link(&sp).unwrap(), fs::read_link(&mp).unwrap());
            } else {
                assert_eq!(a.size(), b.size(), "size of {what}");
                assert_eq!(a.nlink(), b.nlink(), "nlink of {what}");
                assert!(b.blocks() * 512 >= b.size(), "st_blocks of {what}");
                if a.nlink() > 1 {
                    let m = *links.entry(a.ino()).or_insert(b.ino());
                    assert_eq!(m, b.ino(), "hardlinks of {what} share one inode");
                }
                assert!(
                    fs::read(&sp).unwrap() == fs::read(&mp).unwrap(),
                    "bytes of {what}"
                );
            }
            seen += 1;
        }
    }
    // Distinct hardlink groups have distinct inodes.
    let inos: BTreeSet<u64> = links.values().copied().collect();
    assert_eq!(inos.len(), links.len());
    seen
}

fn cfg() -> MountConfig {
    MountConfig {
        fsname: "ware-test".into(),
        ..MountConfig::default()
    }
}

#[test]
fn a_mounted_ware_matches_its_source() {
    if !can_mount() {
        return;
    }
    let src = tmp();
    let with_xattrs = make_tree(src.path());
    if !with_xattrs {
        eprintln!(
            "xattrs not compared: {} has no user xattrs",
            src.path().display()
        );
    }
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    let mnt = tmp();
    let m = mount(store, MountRoot::Ware(id), mnt.path(), &cfg()).unwrap();
    let mp = m.mountpoint().to_path_buf();
    assert!(ware_mounts().contains(&mp));
    let line = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == mp.to_str())
        .unwrap()
        .to_string();
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(
            line.split(' ').nth(5).unwrap().split(',').any(|o| o == opt),
            "{opt}: {line}"
        );
    }
    assert!(line.contains("default_permissions"), "{line}");

    let n = compare(src.path(), &mp, with_xattrs);
    assert!(n > 20_000);
    let root = fs::metadata(&mp).unwrap();
    assert!(root.is_dir());
    assert_eq!(
        root.mode() & 0o7777,
        fs::metadata(src.path()).unwrap().mode() & 0o7777
    );

    // Listings hold . and .. (std's read_dir hides them; ls -a does not).
    let ls = std::process::Command::new("ls")
        .args(["-a", "-1"])
        .arg(mp.join("a"))
        .output()
        .unwrap();
    let ls = String::from_utf8(ls.stdout).unwrap();
    assert_eq!(ls.lines().take(2).collect::<Vec<_>>(), [".", ".."], "{ls}");

    // Misses are ENOENT, also when the kernel answers them from its negative cache.
    for _ in 0..2 {
        let e = fs::symlink_metadata(mp.join("a/no-such-name")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
    let e = fs::symlink_metadata(mp.join("small/below-a-file")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::NOTDIR.raw_os_error())
    );

    // A second look gives the same inode numbers.
    let ino = |p: &str| fs::symlink_metadata(mp.join(p)).unwrap().ino();
    let first = ino("a/b/c/deep");
    assert_eq!(ino("hard2"), first);
    assert_eq!(ino("a/b/c/deep"), first);

    // mmap reads the same bytes.
    let expected = fs::read(src.path().join("medium")).unwrap();
    let file = fs::File::open(mp.join("medium")).unwrap();
    // SAFETY: a private read-only mapping of a file nobody writes (the mount is read-only),
    // read within its length and unmapped before the file is dropped.
    unsafe {
        let p = rustix::mm::mmap(
            std::ptr::null_mut(),
            expected.len(),
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            &file,
            0,
        )
        .unwrap();
        let mapped = std::slice::from_raw_parts(p as *const u8, expected.len());
        assert!(mapped == &expected[..], "mmap bytes differ");
        rustix::mm::munmap(p, expected.len()).unwrap();
    }
    drop(file);

    // A binary on the mount runs.
    let status = std::process::Command::new(mp.join("true"))
        .status()
        .unwrap();
    assert!(status.success());

    // Nothing can be written.
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error()),
            "{what}: {e}"
        );
    };
    erofs(fs::write(mp.join("new"), b"x"), "create");
    erofs(
        fs::OpenOptions::new()
            .append(true)
            .open(mp.join("small"))
            .map(drop),
        "open for writing",
    );
    erofs(fs::create_dir(mp.join("newdir")), "mkdir");
    erofs(fs::remove_file(mp.join("small")), "unlink");
    erofs(fs::rename(mp.join("small"), mp.join("small2")), "rename");
    erofs(
        fs::set_permissions(mp.join("small"), fs::Permissions::from_mode(0o777)),
        "chmod",
    );
    erofs(
        rustix::fs::setxattr(
            mp.join("small"),
            "user.x",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(Into::into),
        "setxattr",
    );

    // Xattr probes: too small a buffer is ERANGE, a missing name ENODATA.
    if with_xattrs {
        let e =
            rustix::fs::lgetxattr(mp.join("small"), "user.colour", &mut [0u8; 2][..]).unwrap_err();
        assert_eq!(e, rustix::io::Errno::RANGE);
        let e =
            rustix::fs::lgetxattr(mp.join("small"), "user.nope", &mut [0u8; 64][..]).unwrap_err();
        assert_eq!(e, rustix::io::Errno::NODATA);
    }

    // statfs answers.
    let st = rustix::fs::statfs(&mp).unwrap();
    assert!(st.f_bsize > 0);

    m.unmount().unwrap();
    assert!(!ware_mounts().contains(&mp));
}

/// A source that says one chunk is corrupt.
struct Damaged {
    inner: Arc<MemStore>,
    bad: ChunkId,
}

impl BlockSource for Damaged {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.inner.node(id)
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        if *id == self.bad {
            return Err(ware_store::Error::CorruptChunk(*id));
        }
        self.inner.chunk(id)
    }
}

#[test]
fn a_corrupt_chunk_gives_eio_for_its_file_only() {
    if !can_mount() {
        return;
    }
    let src = tmp();
    let big = noise(5, 3 << 20);
    fs::write(src.path().join("big"), &big).unwrap();
    fs::write(src.path().join("other"), noise(6, 400_000)).unwrap();
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    let reader = Reader::new(&*store);
    let entry = reader.resolve(&id, b"big").unwrap();
    let chunks = reader.chunks(&entry).unwrap();
    let bad = chunks[chunks.len() / 2].id().unwrap();
    let damaged = Arc::new(Damaged {
        inner: store.clone(),
        bad,
    });
    let mnt = tmp();
    let m = mount(damaged, MountRoot::Ware(id), mnt.path(), &cfg()).unwrap();
    let mp = m.mountpoint().to_path_buf();

    let mut f = fs::File::open(mp.join("big")).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = Vec::new();
    let err = loop {
        match f.read(&mut buf) {
            Ok(0) => panic!("the whole file read despite a corrupt chunk"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::IO.raw_os_error())
    );
    assert!(big.starts_with(&got), "bytes before the fault are right");
    drop(f);
    assert_eq!(fs::read(mp.join("other")).unwrap(), noise(6, 400_000));
    m.unmount().unwrap();
}

struct Names {
    wares: Vec<WareId>,
    names: std::sync::Mutex<Vec<(String, WareId)>>,
}

impl Catalog for Names {
    fn wares(&self) -> Vec<WareId> {
        self.wares.clone()
    }
    fn names(&self) -> Vec<(String, WareId)> {
        self.names.lock().unwrap().clone()
    }
    fn name(&self, name: &str) -> Option<WareId> {
        let names = self.names.lock().unwrap();
        names.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}

#[test]
fn the_whole_store_mount_shows_ids_and_names() {
    if !can_mount() {
        return;
    }
    let store = Arc::new(MemStore::new());
    let (one, two) = (tmp(), tmp());
    fs::write(one.path().join("f"), b"first").unwrap();
    fs::write(two.path().join("g"), b"second").unwrap();
    let (id1, id2) = (pack(&store, one.path()), pack(&store, two.path()));
    let catalog = Arc::new(Names {
        wares: vec![id1],
        names: std::sync::Mutex::new(vec![("base".into(), id1)]),
    });
    let mnt = tmp();
    let m = mount(store, MountRoot::All(catalog.clone()), mnt.path(), &cfg()).unwrap();
    let mp = m.mountpoint().to_path_buf();

    let top: BTreeSet<String> = fs::read_dir(&mp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(top, BTreeSet::from(["names".to_string(), id1.to_string()]));
    assert_eq!(
        fs::read(mp.join(id1.to_string()).join("f")).unwrap(),
        b"first"
    );
    // Not listed, but there on lookup.
    assert_eq!(
        fs::read(mp.join(id2.to_string()).join("g")).unwrap(),
        b"second"
    );
    let link = mp.join("names/base");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        PathBuf::from(format!("../{id1}"))
    );
    assert_eq!(fs::read(link.join("f")).unwrap(), b"first");
    let names: Vec<String> = fs::read_dir(mp.join("names"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["base"]);
    let missing = NodeId::of(b"no such node").to_string();
    assert_eq!(
        fs::metadata(mp.join(missing)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fs::metadata(mp.join("not-an-id")).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Names change while mounted: the link follows within its short timeout.
    catalog.names.lock().unwrap()[0].1 = id2;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let moved = PathBuf::from(format!("../{id2}"));
    while fs::read_link(&link).unwrap() != moved {
        assert!(
            std::time::Instant::now() < deadline,
            "names/base never moved"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(fs::read(link.join("g")).unwrap(), b"second");

    m.unmount().unwrap();
    assert!(!ware_mounts().contains(&mp));
}

#[test]
fn a_missing_ware_fails_before_mounting() {
    if !can_mount() {
        return;
    }
    let store = Arc::new(MemStore::new());
    let id = NodeId::of(b"not stored");
    let mnt = tmp();
    let before = ware_mounts();
    let err = mount(store, MountRoot::Ware(id), mnt.path(), &cfg()).unwrap_err();
    assert!(matches!(err, FsError::Ware { .. }), "{err}");
    assert!(err.to_string().contains(&id.to_string()), "{err}");
    assert_eq!(ware_mounts(), before);
}

#[test]
fn unmount_and_drop_leave_nothing_mounted() {
    if !can_mount() {
        return;
    }
    let src = tmp();
    fs::write(src.path().join("f"), b"x").unwrap();
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    // A space in the path: /proc/self/mountinfo escapes it as \040.
    let top = tmp();
    let mnt = top.path().join("a mount point");
    fs::create_dir(&mnt).unwrap();
    let mnt = mnt.as_path();

    let m = mount(store.clone(), MountRoot::Ware(id), mnt, &cfg()).unwrap();
    let mp = m.mountpoint().to_path_buf();
    assert!(!m.is_finished());
    assert!(!ware_fs::is_dead(&mp));
    drop(m);
    assert!(!ware_mounts().contains(&mp));

    // Unmounted from outside: the session notices, and unmount still succeeds.
    let m = mount(store.clone(), MountRoot::Ware(id), mnt, &cfg()).unwrap();
    ware_fs::detach_unmount(&mp).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !m.is_finished() {
        assert!(std::time::Instant::now() < deadline, "session did not end");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    m.unmount().unwrap();
    assert!(!ware_mounts().contains(&mp));

    // A busy mount (a file open on it) is detached rather than left behind.
    let m = mount(store, MountRoot::Ware(id), mnt, &cfg()).unwrap();
    let f = fs::File::open(mp.join("f")).unwrap();
    let err = m.unmount().unwrap_err();
    assert!(matches!(err, FsError::Unmount { .. }), "{err}");
    assert!(!ware_mounts().contains(&mp));
    drop(f);
}

/// A source that holds back one chunk until the gate opens, and says when a reader waits.
struct Gated {
    inner: Arc<MemStore>,
    held: ChunkId,
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
    waiting: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Gated {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl BlockSource for Gated {
    fn node(&self, id: &NodeId) -> ware_store::Result<Vec<u8>> {
        self.inner.node(id)
    }
    fn chunk(&self, id: &ChunkId) -> ware_store::Result<Vec<u8>> {
        if *id == self.held {
            if let Some(tx) = self.waiting.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.cv.wait(open).unwrap();
            }
        }
        self.inner.chunk(id)
    }
}

/// Opens the gate when dropped, so a failing test never leaves a reader stuck.
struct OpenOnDrop(Arc<Gated>);
impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[test]
fn a_slow_read_does_not_stall_other_files() {
    if !can_mount() {
        return;
    }
    let src = tmp();
    let big = noise(11, 2 << 20);
    fs::write(src.path().join("slow"), &big).unwrap();
    fs::write(src.path().join("quick"), noise(12, 500_000)).unwrap();
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    let reader = Reader::new(&*store);
    let entry = reader.resolve(&id, b"slow").unwrap();
    let held = reader.chunks(&entry).unwrap()[0].id().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let gated = Arc::new(Gated {
        inner: store,
        held,
        open: std::sync::Mutex::new(false),
        cv: std::sync::Condvar::new(),
        waiting: std::sync::Mutex::new(Some(tx)),
    });
    let mnt = tmp();
    let m = mount(gated.clone(), MountRoot::Ware(id), mnt.path(), &cfg()).unwrap();
    let gate = OpenOnDrop(gated.clone());
    let mp = m.mountpoint().to_path_buf();

    let slow_path = mp.join("slow");
    let slow = std::thread::spawn(move || fs::read(slow_path));
    // The slow read is now waiting inside the filesystem.
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the slow read never reached the source");
    let quick_path = mp.join("quick");
    let (qtx, qrx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = qtx.send(fs::read(quick_path));
    });
    let quick = qrx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("a read of another file stalled behind the slow one");
    assert_eq!(quick.unwrap(), noise(12, 500_000));
    drop(gate);
    assert!(slow.join().unwrap().unwrap() == big);
    m.unmount().unwrap();
}

/// Runs a shell command chrooted into `root`; returns its standard output.
fn in_chroot(root: &Path, script: &str) -> String {
    let out = std::process::Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} in {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_rootfs_on_the_mount_runs_under_chroot() {
    if !can_mount() {
        return;
    }
    let Some(rootfs) = rootfs("small") else {
        return;
    };
    let store = Arc::new(MemStore::new());
    let id = pack_dir(&*store, &rootfs, &PackOptions::default(), &NoProgress)
        .unwrap()
        .id;
    let mnt = tmp();
    let m = mount(store, MountRoot::Ware(id), mnt.path(), &cfg()).unwrap();
    let mp = m.mountpoint().to_path_buf();
    // Device nodes are not packed by default (executors bring their own /dev), so the
    // script stays away from /dev/null.
    let script = "cat /etc/debian_version; ls -a /usr/lib /etc | md5sum; \
                  sha256sum /usr/bin/* /usr/lib/x86_64-linux-gnu/*.so* 2>&1 | sha256sum; \
                  expr 6 '*' 7; dpkg-query -W | wc -l";
    let on_mount = in_chroot(&mp, script);
    assert_eq!(on_mount, in_chroot(&rootfs, script));
    assert!(on_mount.contains("42\n"), "{on_mount}");
    m.unmount().unwrap();
}

#[test]
fn allow_other_keeps_private_files_private() {
    use std::os::unix::process::CommandExt;
    if !can_mount() {
        return;
    }
    let src = tmp();
    fs::set_permissions(src.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.path().join("public"), b"for everyone").unwrap();
    fs::set_permissions(src.path().join("public"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(src.path().join("private"), b"root only").unwrap();
    fs::set_permissions(
        src.path().join("private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    let mnt = tmp();
    let config = MountConfig {
        allow_other: true,
        ..cfg()
    };
    let m = mount(store, MountRoot::Ware(id), mnt.path(), &config).unwrap();
    let mp = m.mountpoint().to_path_buf();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == mp.to_str())
        .unwrap();
    assert!(
        line.contains("allow_other") && line.contains("default_permissions"),
        "{line}"
    );

    let cat_as_nobody = |name: &str| {
        std::process::Command::new("cat")
            .arg(mp.join(name))
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = cat_as_nobody("public");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"for everyone");
    let out = cat_as_nobody("private");
    assert!(!out.status.success(), "another user read a 0600 file");
    assert!(out.stdout.is_empty());
    // Root still reads it.
    assert_eq!(fs::read(mp.join("private")).unwrap(), b"root only");
    m.unmount().unwrap();
}

/// Not a test on its own: when `WARE_FS_HELPER_MNT` is set, mounts a small ware there and
/// waits to be killed (the daemon that dies in `a_dead_daemon_is_seen_and_cleared`).
#[test]
fn dead_mount_helper() {
    let Some(mp) = std::env::var_os("WARE_FS_HELPER_MNT") else {
        return;
    };
    let src = tmp();
    fs::write(src.path().join("f"), b"x").unwrap();
    let store = Arc::new(MemStore::new());
    let id = pack(&store, src.path());
    // This process is killed, so nothing it leaves would be cleaned up: the store holds all.
    drop(src);
    let _m = mount(store, MountRoot::Ware(id), Path::new(&mp), &cfg()).unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Kills the helper and clears its mount, whatever the test's outcome.
struct Helper(std::process::Child, PathBuf);
impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if ware_mounts().contains(&self.1) {
            let _ = ware_fs::detach_unmount(&self.1);
        }
    }
}

#[test]
fn a_dead_daemon_is_seen_and_cleared() {
    if !can_mount() {
        return;
    }
    let mnt = tmp();
    let mp = mnt.path().canonicalize().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "dead_mount_helper", "--nocapture"])
        .env("WARE_FS_HELPER_MNT", &mp)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut helper = Helper(child, mp.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ware_mounts().contains(&mp) {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never mounted"
        );
        assert!(helper.0.try_wait().unwrap().is_none(), "the helper exited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!ware_fs::is_dead(&mp));
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"x");

    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    // The mount outlives its daemon: still listed, and every access gives ENOTCONN.
    assert!(ware_mounts().contains(&mp));
    assert!(ware_fs::is_dead(&mp));
    ware_fs::detach_unmount(&mp).unwrap();
    assert!(!ware_mounts().contains(&mp));
    assert!(!ware_fs::is_dead(&mp));
}
