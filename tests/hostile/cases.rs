//! The hostile archives as one table, packed in process (`pack_tar` into a `MemStore`): each case
//! is a name, the archive, the pack options and what must happen — a refusal that names the
//! entry and says why, with no ware left behind, or a ware that holds what it should. Every case
//! runs in its own thread under a deadline (a hang is a failure), and the test fails listing
//! every case that failed, by name. What only the binary shows (exit codes, stderr, fsck of a real
//! store, prlimit'd allocations) is checked end to end in `main.rs`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ware_store::node::{Entry, Kind};
use ware_store::pack::{DeviceFilter, NoProgress, PackOptions, PackReport, SetidFilter, pack_tar};
use ware_store::{MemStore, Reader};

use super::tar::*;

/// No case may take longer than this.
const DEADLINE: Duration = Duration::from_secs(120);

/// What a case must do.
pub enum Expect {
    /// Refused: the error names `entry` and says `why` (case-insensitive); no ware is made.
    Refused { entry: String, why: &'static str },
    /// Packed; the check looks at the ware.
    Packs(Box<dyn Fn(&Packed) + Send>),
}

pub struct Case {
    pub name: String,
    pub tar: Vec<u8>,
    pub opts: PackOptions,
    pub expect: Expect,
}

fn refused(name: &str, tar: Vec<u8>, entry: &str, why: &'static str) -> Case {
    with(name, tar, PackOptions::default(), entry, why)
}

fn with(name: &str, tar: Vec<u8>, opts: PackOptions, entry: &str, why: &'static str) -> Case {
    Case {
        name: name.to_string(),
        tar,
        opts,
        expect: Expect::Refused {
            entry: entry.to_string(),
            why,
        },
    }
}

fn packs(
    name: &str,
    tar: Vec<u8>,
    opts: PackOptions,
    check: impl Fn(&Packed) + Send + 'static,
) -> Case {
    Case {
        name: name.to_string(),
        tar,
        opts,
        expect: Expect::Packs(Box::new(check)),
    }
}

/// A packed ware, to look at.
pub struct Packed {
    pub store: MemStore,
    pub report: PackReport,
}

impl Packed {
    pub fn entry(&self, path: &str) -> Entry {
        Reader::new(&self.store)
            .resolve(&self.report.id, path.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
    pub fn ls(&self, path: &str) -> Vec<String> {
        let r = Reader::new(&self.store);
        let dir = if path.is_empty() {
            r.root(&self.report.id).expect("root")
        } else {
            self.entry(path)
        };
        let mut v: Vec<String> = r
            .list(&dir)
            .expect("list")
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        v.sort();
        v
    }
    pub fn cat(&self, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        Reader::new(&self.store)
            .copy_file(&self.entry(path), &mut out)
            .expect("read");
        out
    }
    pub fn notices(&self) -> String {
        self.report.notices.join("\n")
    }
    /// Unpacks the ware into `outer/jail/t` and checks that nothing appeared beside the target
    /// or above it.
    pub fn unpack(&self) -> Unpacked {
        let dir = ware_test_kit::tempdir("ware-hostile-unpack");
        let jail = dir.path().join("outer/jail");
        std::fs::create_dir_all(&jail).expect("jail");
        let root = jail.join("t");
        ware_store::unpack::unpack(&self.store, &self.report.id, &root, &NoProgress)
            .unwrap_or_else(|e| panic!("unpack: {e}"));
        assert_eq!(
            names_in(&jail),
            ["t"],
            "unpack created something beside its target"
        );
        assert_eq!(
            names_in(&dir.path().join("outer")),
            ["jail"],
            "unpack created something above its target"
        );
        Unpacked { _dir: dir, root }
    }
}

/// An unpacked ware; removed when dropped.
pub struct Unpacked {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dirent")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn run_case(case: Case) -> Result<(), String> {
    let store = MemStore::new();
    let result = pack_tar(&store, &mut &case.tar[..], &case.opts, &NoProgress);
    match (case.expect, result) {
        (Expect::Refused { entry, why }, Err(e)) => {
            let msg = format!("{e}");
            if !msg.contains(&entry) {
                return Err(format!("the error does not name {entry:?}: {msg}"));
            }
            if !msg.to_lowercase().contains(&why.to_lowercase()) {
                return Err(format!("the error does not say {why:?}: {msg}"));
            }
            if !store.wares().is_empty() {
                return Err("a refused pack left a ware".into());
            }
            Ok(())
        }
        (Expect::Refused { entry, .. }, Ok(r)) => {
            Err(format!("packed as {} instead of refusing {entry:?}", r.id))
        }
        (Expect::Packs(_), Err(e)) => Err(format!("refused: {e}")),
        (Expect::Packs(check), Ok(report)) => {
            check(&Packed { store, report });
            Ok(())
        }
    }
}

/// Runs every case, each in a thread under [`DEADLINE`]; fails listing the failed ones by name.
pub fn run_table(cases: Vec<Case>) {
    let total = cases.len();
    let mut failed = Vec::new();
    for case in cases {
        let name = case.name.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case)));
            let _ = tx.send(r.unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()))
            }));
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failed.push(format!("{name}: {why}")),
            Err(_) => failed.push(format!("{name}: hung for more than {DEADLINE:?}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} hostile cases failed:\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

fn deep_path(levels: usize) -> String {
    let mut p = "d/".repeat(levels - 1);
    p.push('f');
    p
}

/// The table.
pub fn cases(somewhere: &str) -> Vec<Case> {
    let mut v = Vec::new();
    // 1. `..` in member names: refused, never resolved, wherever the name comes from.
    for (label, entry, tar) in [
        (
            "dotdot first",
            "../evil",
            Tar::new().file("../evil", b"x").finish(),
        ),
        (
            "dotdot deeper",
            "a/../../evil",
            Tar::new().file("a/../../evil", b"x").finish(),
        ),
        (
            "dotdot after dot",
            "./../evil",
            Tar::new().file("./../evil", b"x").finish(),
        ),
        (
            "dotdot not escaping",
            "a/../b",
            Tar::new().file("a/../b", b"x").finish(),
        ),
        ("dotdot dir", "..", Tar::new().dir("..").finish()),
        (
            "dotdot dir below",
            "../d/",
            Tar::new().dir("../d/").finish(),
        ),
        (
            "dotdot symlink",
            "../link",
            Tar::new().symlink("../link", "/etc/passwd").finish(),
        ),
        (
            "dotdot absolute",
            "/../evil",
            Tar::new().file("/../evil", b"x").finish(),
        ),
        (
            "dotdot after a benign entry",
            "ok/../../../evil",
            Tar::new()
                .file("fine", b"ok")
                .file("ok/../../../evil", b"x")
                .finish(),
        ),
        (
            "dotdot in a PAX path",
            "../pax-evil",
            Tar::new()
                .pax(&[("path", b"../pax-evil")])
                .file("benign", b"x")
                .finish(),
        ),
        (
            "dotdot in a GNU long name",
            "../gnu-evil",
            Tar::new()
                .gnu_longname(b"../gnu-evil")
                .file("benign", b"x")
                .finish(),
        ),
    ] {
        v.push(refused(label, tar, entry, "'..'"));
    }
    // 4. Entries through a symlink (or a file): refused, nothing written where it points.
    for (label, entry, why, tar) in [
        (
            "file through a symlink",
            "a/passwd",
            "not a directory",
            Tar::new()
                .symlink("a", somewhere)
                .file("a/passwd", b"root::0:0::/:/bin/sh\n")
                .finish(),
        ),
        (
            "file two levels through a symlink",
            "a/b/c",
            "not a directory",
            Tar::new()
                .symlink("a", somewhere)
                .file("a/b/c", b"x")
                .finish(),
        ),
        (
            "dir through a symlink",
            "a/sub/",
            "not a directory",
            Tar::new().symlink("a", somewhere).dir("a/sub/").finish(),
        ),
        (
            "symlink through a symlink",
            "a/l",
            "not a directory",
            Tar::new()
                .symlink("a", somewhere)
                .symlink("a/l", "/etc")
                .finish(),
        ),
        (
            "file through a dotdot symlink",
            "d/l/evil",
            "not a directory",
            Tar::new()
                .dir("d/")
                .symlink("d/l", "..")
                .file("d/l/evil", b"x")
                .finish(),
        ),
        (
            "file below a file",
            "f/x",
            "not a directory",
            Tar::new()
                .file("f", b"plain file")
                .file("f/x", b"x")
                .finish(),
        ),
        (
            "hardlink target through a symlink",
            "h",
            "not earlier in the archive",
            Tar::new()
                .symlink("a", somewhere)
                .hardlink("h", "a/passwd")
                .finish(),
        ),
    ] {
        v.push(refused(label, tar, entry, why));
    }
    v.push(packs(
        "a directory entry replaces a symlink",
        Tar::new()
            .symlink("a", somewhere)
            .dir("a/")
            .file("a/passwd", b"x")
            .finish(),
        PackOptions::default(),
        |p| {
            assert_eq!(p.entry("a").kind, Kind::Dir);
            assert_eq!(p.ls("a"), ["passwd"]);
        },
    ));
    // 5. Hardlinks out of the tree, to missing or later entries, to non-files.
    for (label, why, tar) in [
        (
            "hardlink up",
            "'..'",
            Tar::new().file("x", b"x").hardlink("h", "../x").finish(),
        ),
        (
            "hardlink far up",
            "'..'",
            Tar::new().hardlink("h", "a/../../etc/passwd").finish(),
        ),
        (
            "hardlink to nothing",
            "not earlier in the archive",
            Tar::new().hardlink("h", "missing").finish(),
        ),
        (
            "hardlink absolute",
            "not earlier in the archive",
            Tar::new().hardlink("h", "/etc/passwd").finish(),
        ),
        (
            "hardlink to a later entry",
            "not earlier in the archive",
            Tar::new()
                .hardlink("h", "later")
                .file("later", b"x")
                .finish(),
        ),
        (
            "hardlink to a dir",
            "not a regular file",
            Tar::new().dir("d/").hardlink("h", "d").finish(),
        ),
        (
            "hardlink to a dir/",
            "not a regular file",
            Tar::new().dir("d/").hardlink("h", "d/").finish(),
        ),
        (
            "hardlink to the root",
            "not a regular file",
            Tar::new().hardlink("h", ".").finish(),
        ),
        (
            "hardlink to a symlink",
            "not a regular file",
            Tar::new()
                .symlink("s", "/etc/passwd")
                .hardlink("h", "s")
                .finish(),
        ),
        (
            "hardlink without a target",
            "without a target",
            Tar::new().hardlink("h", "").finish(),
        ),
    ] {
        v.push(refused(label, tar, "h", why));
    }
    v.push(refused(
        "hardlink to itself",
        Tar::new()
            .file("self", b"x")
            .hardlink("self", "self")
            .finish(),
        "self",
        "hardlink to itself",
    ));
    // 6. Device nodes and fifos.
    let reject = PackOptions {
        devices: DeviceFilter::Reject,
        ..Default::default()
    };
    for (name, typeflag) in [("null", CHAR), ("loop", BLOCK), ("fifo", FIFO)] {
        let tar = Tar::new()
            .file("f", b"regular")
            .entry(&Hdr::new(name, typeflag, 0).dev(1, 3), &[])
            .finish();
        v.push(with(
            &format!("--devices reject: {name}"),
            tar,
            reject,
            name,
            "--devices reject",
        ));
    }
    // 7. Setuid and setgid files.
    let setid_reject = PackOptions {
        setid: SetidFilter::Reject,
        ..Default::default()
    };
    v.push(with(
        "--setid reject: setgid file",
        Tar::new()
            .file("plain", b"x")
            .file_mode("bin/sg", 0o2711, b"x")
            .finish(),
        setid_reject,
        "bin/sg",
        "setuid/setgid",
    ));
    v.push(packs(
        "--setid reject: a setgid directory is no privilege",
        Tar::new()
            .entry(&Hdr::new("shared/", DIR, 0).mode(0o2775), &[])
            .finish(),
        setid_reject,
        |p| assert_eq!(p.entry("shared").mode, 0o2775),
    ));
    // 8. PAX headers lying about sizes, or repeating records.
    v.push(refused(
        "PAX size larger than the data",
        Tar::new()
            .pax(&[("size", b"1048576")])
            .entry(&Hdr::new("big", REG, 10), b"0123456789")
            .finish(),
        "big",
        "truncated",
    ));
    v.push(refused(
        "PAX size larger than the data, inline",
        Tar::new()
            .pax(&[("size", b"4000")])
            .entry(&Hdr::new("small", REG, 10), b"0123456789")
            .finish(),
        "small",
        "truncated",
    ));
    v.push(refused(
        "PAX size u64::MAX",
        Tar::new()
            .pax(&[("size", u64::MAX.to_string().as_bytes())])
            .entry(&Hdr::new("max", REG, 10), b"0123456789")
            .finish(),
        "tar entry 1",
        "corrupt or truncated",
    ));
    v.push(refused(
        "PAX size smaller than the data",
        Tar::new()
            .pax(&[("size", b"5")])
            .entry(&Hdr::new("small", REG, 1000), &[b'A'; 1000])
            .finish(),
        "tar entry 2",
        "corrupt or truncated archive",
    ));
    for bad in [&b"abc"[..], b"-1", b"", b"10 "] {
        v.push(refused(
            &format!("PAX size {:?}", String::from_utf8_lossy(bad)),
            Tar::new()
                .pax(&[("size", bad)])
                .entry(&Hdr::new("f", REG, 10), b"0123456789")
                .finish(),
            "f",
            "PAX size",
        ));
    }
    v.push(refused(
        "repeated PAX path",
        Tar::new()
            .pax(&[("path", b"first"), ("path", b"second")])
            .file("benign", b"abc")
            .finish(),
        "first",
        "repeated PAX path",
    ));
    v.push(refused(
        "repeated PAX linkpath",
        Tar::new()
            .pax(&[("linkpath", b"a"), ("linkpath", b"/etc/shadow")])
            .symlink("s", "benign")
            .finish(),
        "s",
        "repeated PAX linkpath",
    ));
    v.push(refused(
        "repeated PAX sizes that disagree",
        Tar::new()
            .pax(&[("size", b"3"), ("size", b"700")])
            .entry(&Hdr::new("f", REG, 3), b"abc")
            .finish(),
        "f",
        "PAX size",
    ));
    // 9. Truncated archives.
    let data = ware_test_kit::noise(0x9e3779b97f4a7c15, 300_000);
    let full = Tar::new()
        .file("first", b"complete")
        .file("big", &data)
        .finish();
    v.push(refused(
        "cut in chunked file data",
        full[..512 * 3 + 150_000].to_vec(),
        "big",
        "truncated",
    ));
    let full = Tar::new()
        .file("first", b"complete")
        .file("small", &data[..3000])
        .finish();
    v.push(refused(
        "cut in inline file data",
        full[..512 * 3 + 1000].to_vec(),
        "small",
        "truncated",
    ));
    let full = Tar::new()
        .file("first", b"complete")
        .file("padded", &data[..1000])
        .finish();
    v.push(refused(
        "cut in the padding",
        full[..512 * 3 + 1000].to_vec(),
        "tar entry 3",
        "truncated",
    ));
    let full = Tar::new()
        .file("first", b"complete")
        .file("second", b"never read")
        .finish();
    for (cut, which) in [
        (512 + 512 + 100, "tar entry 2"),
        (512 + 512 + 511, "tar entry 2"),
        (300, "tar entry 1"),
    ] {
        v.push(refused(
            &format!("cut in a header at {cut}"),
            full[..cut].to_vec(),
            which,
            "truncated",
        ));
    }
    // 10. NUL inside names.
    v.push(refused(
        "NUL in a PAX path",
        Tar::new()
            .pax(&[("path", b"dir/a\0b")])
            .file("benign", b"x")
            .finish(),
        "dir/a",
        "NUL",
    ));
    v.push(refused(
        "NUL cutting a PAX path short",
        Tar::new()
            .pax(&[("path", b"etc/passwd\0.txt")])
            .file("benign", b"x")
            .finish(),
        "etc/passwd",
        "NUL",
    ));
    v.push(refused(
        "NUL in a symlink target",
        Tar::new()
            .pax(&[("linkpath", b"/etc\0/../x")])
            .symlink("s", "benign")
            .finish(),
        "s",
        "NUL",
    ));
    // 12. Deep paths: 4096 levels at most.
    for levels in [10_000, 4097] {
        let path = deep_path(levels);
        v.push(refused(
            &format!("{levels} levels"),
            Tar::new()
                .pax(&[("path", path.as_bytes())])
                .file("benign", b"deep")
                .finish(),
            &path,
            "deeper than 4096 levels",
        ));
    }
    // 14. Corrupt header checksums.
    let mut h = Hdr::new("f", REG, 1);
    h.checksum_delta = 1;
    v.push(refused(
        "wrong checksum",
        Tar::new().entry(&h, b"x").finish(),
        "tar entry 1",
        "checksum",
    ));
    let mut tar = Tar::new().file("good", b"x").file("second", b"y").finish();
    tar[1024] ^= 0x20;
    v.push(refused(
        "flipped byte in the second header",
        tar,
        "tar entry 2",
        "checksum",
    ));
    let mut tar = Tar::new().file("f", b"x").finish();
    tar[148..156].copy_from_slice(b"zzzzzz\0 ");
    v.push(refused(
        "checksum not a number",
        tar,
        "tar entry 1",
        "corrupt",
    ));
    // 15. Not a tar archive at all.
    v.push(refused(
        "empty input",
        Vec::new(),
        "<tar input>",
        "not a tar archive",
    ));
    v.push(refused(
        "only end-of-archive blocks",
        vec![0u8; 1024],
        "<tar input>",
        "not a tar archive",
    ));
    v.push(refused(
        "text shorter than a header",
        b"hello, world\n".to_vec(),
        "tar entry 1",
        "corrupt or truncated",
    ));
    packing_cases(&mut v);
    v
}

/// An archive of every kind of entry the writer makes (a PAX long name `long`, a GNU long name):
/// it packs, and GNU tar reads it.
pub fn writer_sample(long: &str) -> Vec<u8> {
    Tar::new()
        .dir("d/")
        .file("d/f", b"hello")
        .symlink("d/s", "f")
        .hardlink("d/h", "d/f")
        .pax(&[("path", long.as_bytes()), ("mtime", b"1600000000.5")])
        .file("ignored-short-name", b"long")
        .gnu_longname(b"g/long-gnu-name")
        .file("ignored", b"gnu")
        .finish()
}

/// The cases that make a ware: what it holds, and that it unpacks inside its target.
fn packing_cases(v: &mut Vec<Case>) {
    let def = PackOptions::default;
    // 0. The writer's archives pack (so the refusals are about the hostile part).
    let long = "l/".repeat(60) + "file";
    let l2 = long.clone();
    v.push(packs(
        "the writer's archive is well formed",
        writer_sample(&long),
        def(),
        move |p| {
            assert_eq!(p.cat("d/f"), b"hello");
            assert_eq!(p.cat("d/h"), b"hello");
            assert_eq!(p.cat(&l2), b"long");
            assert_eq!(p.cat("g/long-gnu-name"), b"gnu");
            assert_eq!(
                p.entry("d/s").target.as_deref().map(|t| &t[..]),
                Some(&b"f"[..])
            );
        },
    ));
    // 2. Absolute names: the leading `/` is stripped, with a notice.
    v.push(packs(
        "absolute names are made relative",
        Tar::new()
            .dir("/")
            .dir("/etc/")
            .file("/etc/evil", b"evil\n")
            .file("//usr//bin/./tool", b"t")
            .finish(),
        def(),
        |p| {
            assert_eq!(p.ls(""), ["etc", "usr"]);
            assert_eq!(p.ls("etc"), ["evil"]);
            assert_eq!(p.cat("usr/bin/tool"), b"t");
            assert!(
                p.notices().contains("leading '/' removed"),
                "{}",
                p.notices()
            );
            let before = Path::new("/etc/evil").exists();
            let u = p.unpack();
            assert_eq!(std::fs::read(u.root.join("etc/evil")).unwrap(), b"evil\n");
            assert_eq!(
                Path::new("/etc/evil").exists(),
                before,
                "unpack wrote /etc/evil"
            );
        },
    ));
    // 3. Symlinks pointing out of the tree: kept verbatim, never followed.
    let links = [
        ("etc-link", "/etc"),
        ("up", "../../.."),
        ("deep/passwd", "../../../../../../etc/passwd"),
        ("abs-missing", "/nonexistent/ware-test/target"),
    ];
    let mut t = Tar::new();
    t.symlink(links[0].0, links[0].1)
        .symlink(links[1].0, links[1].1)
        .dir("deep/");
    t.symlink(links[2].0, links[2].1)
        .symlink(links[3].0, links[3].1);
    v.push(packs(
        "symlinks pointing out are kept verbatim",
        t.finish(),
        def(),
        move |p| {
            let u = p.unpack();
            for (name, target) in links {
                let e = p.entry(name);
                assert_eq!(e.kind, Kind::Symlink, "{name}");
                assert_eq!(
                    e.target.as_deref().map(|t| &t[..]),
                    Some(target.as_bytes()),
                    "{name}"
                );
                assert_eq!(
                    std::fs::read_link(u.root.join(name)).expect(name),
                    Path::new(target)
                );
            }
            assert!(
                !Path::new("/nonexistent/ware-test").exists(),
                "unpack followed a symlink out"
            );
        },
    ));
    // 5. A good hardlink: one group.
    v.push(packs(
        "a good hardlink",
        Tar::new().file("f", b"data").hardlink("g", "f").finish(),
        def(),
        |p| {
            let (f, g) = (p.entry("f"), p.entry("g"));
            assert!(
                f.hardlink.is_some() && f.hardlink == g.hardlink,
                "{:?} {:?}",
                f.hardlink,
                g.hardlink
            );
            assert_eq!(p.cat("g"), b"data");
            let u = p.unpack();
            let ino = |n: &str| std::fs::metadata(u.root.join(n)).unwrap().ino();
            assert_eq!(ino("f"), ino("g"));
        },
    ));
    // 6. Device nodes and fifos: skipped by default (one notice), kept on request.
    v.push(packs(
        "devices are skipped by default",
        devices_tar(),
        def(),
        |p| {
            assert_eq!(p.ls(""), ["f"]);
            let n = p.notices();
            assert!(
                n.contains("device nodes and fifos left out") && n.contains("3 entries"),
                "{n}"
            );
            let skip = PackOptions {
                devices: DeviceFilter::Skip,
                ..Default::default()
            };
            let again = pack_tar(
                &MemStore::new(),
                &mut &devices_tar()[..],
                &skip,
                &NoProgress,
            )
            .unwrap();
            assert_eq!(again.id, p.report.id, "--devices skip is the default");
        },
    ));
    let keep = PackOptions {
        devices: DeviceFilter::Keep,
        ..Default::default()
    };
    v.push(packs("devices kept on request", devices_tar(), keep, |p| {
        assert_eq!(p.ls(""), ["f", "fifo", "loop", "null"]);
        let null = p.entry("null");
        assert_eq!(
            (null.kind, null.rdev, null.mode),
            (Kind::CharDevice, Some((1, 3)), 0o666)
        );
        let lp = p.entry("loop");
        assert_eq!((lp.kind, lp.rdev), (Kind::BlockDevice, Some((7, 0))));
        assert_eq!(p.entry("fifo").kind, Kind::Fifo);
        let u = p.unpack();
        let md = |n: &str| std::fs::symlink_metadata(u.root.join(n)).expect(n);
        assert!(md("fifo").file_type().is_fifo(), "fifo not recreated");
        if ware_test_kit::is_root() {
            assert!(
                md("null").file_type().is_char_device(),
                "char device not recreated"
            );
            assert_eq!(md("null").rdev(), rustix::fs::makedev(1, 3));
            assert_eq!(mode_of(&u.root.join("null")), 0o666);
            assert!(
                md("loop").file_type().is_block_device(),
                "block device not recreated"
            );
            assert_eq!(md("loop").rdev(), rustix::fs::makedev(7, 0));
        }
    }));
    // 7. Setuid and setgid: kept by default, stripped on request (not on a directory).
    v.push(packs("setid kept by default", setid_tar(), def(), |p| {
        assert_eq!(p.entry("su").mode, 0o4755);
        assert_eq!(p.entry("sg").mode, 0o2755);
        assert_eq!(p.entry("shared").mode, 0o2775);
        let u = p.unpack();
        assert_eq!(mode_of(&u.root.join("su")), 0o4755);
        assert_eq!(mode_of(&u.root.join("sg")), 0o2755);
    }));
    let strip = PackOptions {
        setid: SetidFilter::Strip,
        ..Default::default()
    };
    v.push(packs(
        "setid stripped on request",
        setid_tar(),
        strip,
        |p| {
            assert_eq!(p.entry("su").mode, 0o755);
            assert_eq!(p.entry("sg").mode, 0o755);
            assert_eq!(
                p.entry("shared").mode,
                0o2775,
                "setgid on a directory is no privilege"
            );
            assert_eq!(mode_of(&p.unpack().root.join("su")), 0o755);
        },
    ));
    // 8. PAX global headers are not members, whatever they are called.
    for name in [
        &b"/tmp/GlobalHead.1234.1"[..],
        b"pax_global_header",
        b"../GlobalHead.1",
    ] {
        let body = pax_records(&[("comment", b"0123456789abcdef0123456789abcdef01234567")]);
        let tar = Tar::new()
            .entry(&Hdr::new(name, b'g', body.len() as u64), &body)
            .file("f", b"x")
            .finish();
        v.push(packs(
            &format!("PAX global header named {}", String::from_utf8_lossy(name)),
            tar,
            def(),
            |p| {
                assert_eq!(p.ls(""), ["f"]);
                assert!(
                    !p.notices().contains("leading '/'"),
                    "spurious notice: {}",
                    p.notices()
                );
            },
        ));
    }
    // 11. 100 000 entries in one directory.
    const N: usize = 100_000;
    let mut t = Tar::new();
    t.0.reserve(N * 1024 + 4096);
    t.dir("dir/");
    for i in 0..N {
        let name = format!("dir/f{i:06}");
        t.file(
            name,
            if i % 10 == 0 {
                i.to_string().into_bytes()
            } else {
                Vec::new()
            }
            .as_slice(),
        );
    }
    v.push(packs(
        "100 000 entries in one directory",
        t.finish(),
        def(),
        |p| {
            assert_eq!(p.ls("dir").len(), N);
            assert_eq!(p.cat("dir/f099990"), b"99990");
            assert_eq!(p.cat("dir/f000001"), b"");
            let u = p.unpack();
            assert_eq!(std::fs::read_dir(u.root.join("dir")).unwrap().count(), N);
            assert_eq!(std::fs::read(u.root.join("dir/f050000")).unwrap(), b"50000");
        },
    ));
    // 12. Deep paths: 1000 levels, and the deepest a ware may be (4096, over PATH_MAX on disk).
    for levels in [1000, 4096] {
        let path = deep_path(levels);
        let tar = Tar::new()
            .pax(&[("path", path.as_bytes())])
            .file("benign", b"bottom of the well\n")
            .finish();
        v.push(packs(
            &format!("{levels} levels pack and unpack"),
            tar,
            def(),
            move |p| {
                assert_eq!(p.cat(&path), b"bottom of the well\n");
                assert_eq!(p.entry(&path).size, 19);
                assert_eq!(
                    read_beneath(&p.unpack().root, &path),
                    b"bottom of the well\n"
                );
            },
        ));
    }
}

pub fn devices_tar() -> Vec<u8> {
    Tar::new()
        .file("f", b"regular")
        .entry(&Hdr::new("null", CHAR, 0).mode(0o666).dev(1, 3), &[])
        .entry(&Hdr::new("loop", BLOCK, 0).mode(0o660).dev(7, 0), &[])
        .entry(&Hdr::new("fifo", FIFO, 0).mode(0o600), &[])
        .finish()
}

pub fn setid_tar() -> Vec<u8> {
    Tar::new()
        .file_mode("su", 0o4755, b"#!/bin/sh\n")
        .file_mode("sg", 0o2755, b"#!/bin/sh\n")
        .entry(&Hdr::new("shared/", DIR, 0).mode(0o2775), &[])
        .file_mode("plain", 0o755, b"#!/bin/sh\n")
        .finish()
}

/// Reads a file whose path may be longer than PATH_MAX, one directory at a time.
fn read_beneath(root: &Path, path: &str) -> Vec<u8> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let dir_flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(root, dir_flags, Mode::empty()).expect("open root");
    let parts: Vec<&str> = path.split('/').collect();
    let (file, dirs) = parts.split_last().expect("a path");
    for (i, d) in dirs.iter().enumerate() {
        fd = rustix::fs::openat(&fd, *d, dir_flags, Mode::empty())
            .unwrap_or_else(|e| panic!("level {i}: {e}"));
    }
    let f = rustix::fs::openat(
        &fd,
        *file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open file");
    let mut v = Vec::new();
    std::fs::File::from(f).read_to_end(&mut v).expect("read");
    v
}
