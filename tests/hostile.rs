//! Hostile tar archives, end to end through the real `ware` binary.
//!
//! Every case asserts what a user would notice: either a clear refusal (exit code 1, not a
//! panic; stderr starts with `ware: error:` and names the offending entry; the store holds no
//! ware and `ware fsck` is clean), or a safe ware, which `ware unpack` materialises without
//! creating anything outside the target directory.
//!
//! The archives are written header by header ([`Hdr`], [`Tar`]): the `tar` crate's builder
//! refuses the very things these tests need (`..`, lying sizes, bad checksums).

mod common;
use common::*;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Writing tar archives by hand.

const REG: u8 = b'0';
const HARDLINK: u8 = b'1';
const SYMLINK: u8 = b'2';
const CHAR: u8 = b'3';
const BLOCK: u8 = b'4';
const DIR: u8 = b'5';
const FIFO: u8 = b'6';
const PAX: u8 = b'x';
const GNU_LONGNAME: u8 = b'L';

#[derive(Clone, Copy, PartialEq, Eq)]
enum Magic {
    /// POSIX ustar: `ustar\0` `00`.
    Ustar,
    /// GNU: `ustar ` ` \0`.
    Gnu,
}

/// One raw 512-byte tar header, every field settable (and breakable).
#[derive(Clone)]
struct Hdr {
    name: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: Vec<u8>,
    dev: (u32, u32),
    magic: Magic,
    /// Write the size field in base-256 (GNU) rather than octal.
    size_base256: bool,
    /// Write the size field as 12 octal digits with no terminator (room for 8 GiB).
    size_octal12: bool,
    /// Added to the correct checksum (non-zero: a corrupt header).
    checksum_delta: i64,
}

impl Hdr {
    fn new(name: impl AsRef<[u8]>, typeflag: u8, size: u64) -> Hdr {
        let mode = match typeflag {
            DIR => 0o755,
            SYMLINK => 0o777,
            _ => 0o644,
        };
        Hdr {
            name: name.as_ref().to_vec(),
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime: 1_600_000_000,
            typeflag,
            linkname: Vec::new(),
            dev: (0, 0),
            magic: Magic::Ustar,
            size_base256: false,
            size_octal12: false,
            checksum_delta: 0,
        }
    }

    fn mode(mut self, mode: u32) -> Hdr {
        self.mode = mode;
        self
    }

    fn link(mut self, target: impl AsRef<[u8]>) -> Hdr {
        self.linkname = target.as_ref().to_vec();
        self
    }

    fn dev(mut self, major: u32, minor: u32) -> Hdr {
        self.dev = (major, minor);
        self
    }

    fn bytes(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        assert!(
            self.name.len() <= 100,
            "test bug: name longer than 100 bytes (use a PAX path)"
        );
        assert!(
            self.linkname.len() <= 100,
            "test bug: link name longer than 100 bytes"
        );
        h[..self.name.len()].copy_from_slice(&self.name);
        octal(&mut h[100..108], self.mode as u64);
        octal(&mut h[108..116], self.uid);
        octal(&mut h[116..124], self.gid);
        if self.size_base256 {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&self.size.to_be_bytes());
        } else if self.size_octal12 {
            let s = format!("{:012o}", self.size);
            assert_eq!(s.len(), 12, "test bug: size does not fit 12 octal digits");
            h[124..136].copy_from_slice(s.as_bytes());
        } else {
            octal(&mut h[124..136], self.size);
        }
        octal(&mut h[136..148], self.mtime);
        h[156] = self.typeflag;
        h[157..157 + self.linkname.len()].copy_from_slice(&self.linkname);
        match self.magic {
            Magic::Ustar => {
                h[257..263].copy_from_slice(b"ustar\0");
                h[263..265].copy_from_slice(b"00");
            }
            Magic::Gnu => {
                h[257..263].copy_from_slice(b"ustar ");
                h[263..265].copy_from_slice(b" \0");
            }
        }
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        if matches!(self.typeflag, CHAR | BLOCK) {
            octal(&mut h[329..337], self.dev.0 as u64);
            octal(&mut h[337..345], self.dev.1 as u64);
        }
        h[148..156].fill(b' ');
        let sum: i64 = h.iter().map(|&b| b as i64).sum::<i64>() + self.checksum_delta;
        let ck = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(ck.as_bytes());
        h
    }
}

/// Writes `v` as zero-padded octal filling all but the last byte of `field`, NUL-terminated.
fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    assert_eq!(
        s.len(),
        w,
        "test bug: {v} does not fit a {}-byte octal field",
        field.len()
    );
    field[..w].copy_from_slice(s.as_bytes());
    field[w] = 0;
}

/// PAX records: `LEN key=value\n`, LEN counting itself.
fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body_len = 1 + k.len() + 1 + v.len() + 1; // " " key "=" value "\n"
        let mut n = body_len + 1;
        while body_len + n.to_string().len() != n {
            n = body_len + n.to_string().len();
        }
        out.extend_from_slice(n.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// A tar archive being written.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Tar {
        Tar::default()
    }

    /// A header followed by `data`, padded to a block.
    fn entry(&mut self, h: &Hdr, data: &[u8]) -> &mut Tar {
        self.0.extend_from_slice(&h.bytes());
        self.0.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let rem = self.0.len() % 512;
        if rem != 0 {
            self.0.resize(self.0.len() + 512 - rem, 0);
        }
    }

    fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Tar {
        self.entry(&Hdr::new(name, REG, data.len() as u64), data)
    }

    fn file_mode(&mut self, name: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> &mut Tar {
        self.entry(&Hdr::new(name, REG, data.len() as u64).mode(mode), data)
    }

    fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, DIR, 0), &[])
    }

    fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, SYMLINK, 0).link(target), &[])
    }

    fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(&Hdr::new(name, HARDLINK, 0).link(target), &[])
    }

    /// A PAX extended header ('x') describing the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let body = pax_records(records);
        self.entry(
            &Hdr::new("./PaxHeaders/entry", PAX, body.len() as u64),
            &body,
        )
    }

    /// A GNU long name ('L') for the next entry.
    fn gnu_longname(&mut self, name: &[u8]) -> &mut Tar {
        let mut body = name.to_vec();
        body.push(0);
        let mut h = Hdr::new("././@LongLink", GNU_LONGNAME, body.len() as u64);
        h.magic = Magic::Gnu;
        self.entry(&h, &body)
    }

    /// The archive with its two zero end-of-archive blocks.
    fn finish(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.resize(v.len() + 1024, 0);
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Running `ware` and checking what a user sees.

/// No case may take longer than this: a hang is a failure.
const DEADLINE: Duration = Duration::from_secs(120);
/// The address space data limit given to `ware pack` (the walk thread reserves a 1 GiB stack):
/// an allocation sized by a lying header (8 GiB) fails instead of going unnoticed.
const DATA_LIMIT: u64 = 4 << 30;

/// Packs `tar` from stdin like [`Ware::pack_stdin`], but with a deadline (the child is killed
/// and the test fails if it hangs) and a data-size limit (a huge allocation aborts it).
fn pack(w: &Ware, tar: &[u8], extra: &[&str]) -> Output {
    run_with_stdin(w.command().arg("pack").args(extra).arg("-"), tar)
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    // The limit is set by util-linux's prlimit around the real command line.
    let mut prlimit = Command::new("prlimit");
    prlimit.arg(format!("--data={DATA_LIMIT}")).arg("--");
    let mut limited = under(prlimit, cmd);
    let cmd = &mut limited;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ware");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait ware") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill(); // our own child, by its handle
            let _ = child.wait();
            panic!("ware pack hung for more than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A refusal: exit code 1 (not 101, not a signal), `ware: error:` naming `entry` and saying
/// `why` (case-insensitive), no ID on stdout, no ware in the store, and a clean fsck.
#[track_caller]
fn assert_refused(w: &Ware, out: &Output, entry: &str, why: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1, got {} with stderr:\n{err}",
        out.status
    );
    assert!(!err.contains("panicked"), "ware panicked:\n{err}");
    assert!(
        err.starts_with("ware: error:"),
        "stderr does not start with 'ware: error:':\n{err}"
    );
    assert!(
        err.contains(entry),
        "stderr does not name the entry {entry:?}:\n{err}"
    );
    assert!(
        err.to_lowercase().contains(&why.to_lowercase()),
        "stderr does not say {why:?}:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refused pack printed something on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_ware(w);
}

/// The store holds no ware, and fsck finds nothing wrong (chunks written before the error are at
/// most unreferenced).
#[track_caller]
fn assert_no_ware(w: &Ware) {
    if !w.store().exists() {
        return; // the pack failed before opening the store: nothing to check
    }
    let stats = w.stats();
    assert_eq!(stats["wares"], 0, "a refused pack left a ware: {stats}");
    let fsck = w.run(["fsck"]);
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "fsck after a refused pack: {}\n{}",
        String::from_utf8_lossy(&fsck.stdout),
        stderr(&fsck)
    );
}

/// A successful pack: returns the ware ID.
#[track_caller]
fn assert_packed(out: &Output) -> String {
    assert!(
        out.status.success(),
        "pack failed ({}):\n{}",
        out.status,
        stderr(out)
    );
    let id = String::from_utf8(out.stdout.clone())
        .expect("utf-8 ID")
        .trim()
        .to_string();
    assert!(id.starts_with("bafyr4i"), "unexpected ID {id:?}");
    id
}

/// `ware --json stat ID/PATH`.
fn stat(w: &Ware, at: &str) -> serde_json::Value {
    serde_json::from_str(&w.ok(["--json", "stat", at])).expect("stat json")
}

/// Names in a ware directory (`ware --json ls ID/PATH`).
fn ls(w: &Ware, at: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&w.ok(["--json", "ls", at])).expect("ls json");
    v.as_array()
        .expect("ls array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
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

/// Unpacks `id` into `<scratch>/outer/jail/t` and checks that nothing appeared beside the target
/// (in `jail`) or one level further up (in `outer`). Returns the target.
#[track_caller]
fn unpack_jailed(w: &Ware, id: &str) -> PathBuf {
    let outer = w.path("outer");
    let jail = outer.join("jail");
    std::fs::create_dir_all(&jail).expect("jail");
    let target = jail.join("t");
    w.ok([OsStr::new("unpack"), OsStr::new(id), target.as_os_str()]);
    assert_eq!(
        names_in(&jail),
        ["t"],
        "unpack created something beside its target"
    );
    assert_eq!(
        names_in(&outer),
        ["jail"],
        "unpack created something above its target"
    );
    target
}

// ---------------------------------------------------------------------------------------------
// 0. The helper writes archives that pack (so refusals below are about the hostile part).

#[test]
fn handwritten_archives_are_well_formed() {
    let w = Ware::new();
    let long = "l/".repeat(60) + "file";
    let tar = Tar::new()
        .dir("d/")
        .file("d/f", b"hello")
        .symlink("d/s", "f")
        .hardlink("d/h", "d/f")
        .pax(&[("path", long.as_bytes()), ("mtime", b"1600000000.5")])
        .file("ignored-short-name", b"long")
        .gnu_longname(b"g/long-gnu-name")
        .file("ignored", b"gnu")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    assert_eq!(w.ok(["cat", &format!("{id}/d/f")]), "hello");
    assert_eq!(w.ok(["cat", &format!("{id}/d/h")]), "hello");
    assert_eq!(w.ok(["cat", &format!("{id}/{long}")]), "long");
    assert_eq!(w.ok(["cat", &format!("{id}/g/long-gnu-name")]), "gnu");
    assert_eq!(stat(&w, &format!("{id}/d/s"))["target"], "f");
    // Cross-check the writer against GNU tar, when there is one.
    if let Ok(out) = Command::new("tar")
        .arg("-tf")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&tar)?;
            c.wait_with_output()
        })
    {
        assert!(
            out.status.success(),
            "GNU tar rejects the helper's archive: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            listed.contains(&long) && listed.contains("g/long-gnu-name"),
            "GNU tar lists:\n{listed}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. `..` in member names.

#[test]
fn dotdot_names_are_refused() {
    // (entry name as the header says it, what the tar holds)
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("../evil", Tar::new().file("../evil", b"x").finish()),
        (
            "a/../../evil",
            Tar::new().file("a/../../evil", b"x").finish(),
        ),
        ("./../evil", Tar::new().file("./../evil", b"x").finish()),
        // Does not even escape, still refused: `..` is never resolved.
        ("a/../b", Tar::new().file("a/../b", b"x").finish()),
        ("..", Tar::new().dir("..").finish()),
        ("../d/", Tar::new().dir("../d/").finish()),
        (
            "../link",
            Tar::new().symlink("../link", "/etc/passwd").finish(),
        ),
        ("/../evil", Tar::new().file("/../evil", b"x").finish()),
        // After a benign entry, so the refusal is not just "the first entry".
        (
            "ok/../../../evil",
            Tar::new()
                .file("fine", b"ok")
                .file("ok/../../../evil", b"x")
                .finish(),
        ),
        // The real name in a PAX path record, a benign one in the ustar header.
        (
            "../pax-evil",
            Tar::new()
                .pax(&[("path", b"../pax-evil")])
                .file("benign", b"x")
                .finish(),
        ),
        // The real name in a GNU long-name entry.
        (
            "../gnu-evil",
            Tar::new()
                .gnu_longname(b"../gnu-evil")
                .file("benign", b"x")
                .finish(),
        ),
    ];
    for (entry, tar) in cases {
        let w = Ware::new();
        let out = pack(&w, &tar, &[]);
        assert_refused(&w, &out, entry, "'..'");
        // Nothing was written beside the store either.
        assert_eq!(
            names_in(w.dir.path())
                .iter()
                .filter(|n| *n != "store")
                .count(),
            0,
            "{entry}: pack wrote outside its store"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Absolute names: the leading `/` is stripped.

#[test]
fn absolute_names_are_made_relative() {
    let w = Ware::new();
    let tar = Tar::new()
        .dir("/")
        .dir("/etc/")
        .file("/etc/evil", b"evil\n")
        .file("//usr//bin/./tool", b"t")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    assert_eq!(ls(&w, &format!("{id}/etc")), ["evil"]);
    assert_eq!(ls(&w, &id), ["etc", "usr"]);
    assert_eq!(w.ok(["cat", &format!("{id}/etc/evil")]), "evil\n");
    assert_eq!(w.ok(["cat", &format!("{id}/usr/bin/tool")]), "t");

    // Without --quiet, the user is told.
    let out = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_ware"))
            .env_remove("WARE_STORE")
            .arg("--store")
            .arg(w.store())
            .args(["pack", "-"]),
        &tar,
    );
    assert_eq!(assert_packed(&out), id);
    assert!(
        stderr(&out).contains("leading '/' removed"),
        "no notice about absolute names:\n{}",
        stderr(&out)
    );

    let etc_evil_before = Path::new("/etc/evil").exists();
    let target = unpack_jailed(&w, &id);
    assert_eq!(
        std::fs::read(target.join("etc/evil")).expect("etc/evil"),
        b"evil\n"
    );
    assert_eq!(
        Path::new("/etc/evil").exists(),
        etc_evil_before,
        "unpack wrote /etc/evil"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Symlinks pointing out of the tree: kept verbatim, never followed.

#[test]
fn symlinks_pointing_out_are_kept_verbatim() {
    let w = Ware::new();
    let tar = Tar::new()
        .symlink("etc-link", "/etc")
        .symlink("up", "../../..")
        .dir("deep/")
        .symlink("deep/passwd", "../../../../../../etc/passwd")
        .symlink("abs-missing", "/nonexistent/ware-test/target")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    for (name, target) in [
        ("etc-link", "/etc"),
        ("up", "../../.."),
        ("deep/passwd", "../../../../../../etc/passwd"),
        ("abs-missing", "/nonexistent/ware-test/target"),
    ] {
        let st = stat(&w, &format!("{id}/{name}"));
        assert_eq!(st["kind"], "symlink", "{name}");
        assert_eq!(st["target"], target, "{name}");
    }
    let t = unpack_jailed(&w, &id);
    assert_eq!(names_in(&t), ["abs-missing", "deep", "etc-link", "up"]);
    for (name, target) in [
        ("etc-link", "/etc"),
        ("up", "../../.."),
        ("deep/passwd", "../../../../../../etc/passwd"),
    ] {
        let p = t.join(name);
        assert!(
            std::fs::symlink_metadata(&p)
                .expect(name)
                .file_type()
                .is_symlink(),
            "{name} is not a symlink"
        );
        assert_eq!(
            std::fs::read_link(&p).expect(name),
            Path::new(target),
            "{name}"
        );
    }
    assert!(
        !Path::new("/nonexistent/ware-test").exists(),
        "unpack followed a symlink out"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. An entry "through" a symlink.

#[test]
fn entries_through_a_symlink_are_refused() {
    let probe = tempfile::Builder::new()
        .prefix("ware-hostile-somewhere")
        .tempdir_in(scratch())
        .expect("tempdir");
    let somewhere = probe
        .path()
        .to_str()
        .expect("utf-8 scratch path")
        .to_string();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a/passwd",
            Tar::new()
                .symlink("a", &somewhere)
                .file("a/passwd", b"root::0:0::/:/bin/sh\n")
                .finish(),
        ),
        (
            "a/b/c",
            Tar::new()
                .symlink("a", &somewhere)
                .file("a/b/c", b"x")
                .finish(),
        ),
        (
            "a/sub/",
            Tar::new().symlink("a", &somewhere).dir("a/sub/").finish(),
        ),
        (
            "a/l",
            Tar::new()
                .symlink("a", &somewhere)
                .symlink("a/l", "/etc")
                .finish(),
        ),
        (
            "d/l/evil",
            Tar::new()
                .dir("d/")
                .symlink("d/l", "..")
                .file("d/l/evil", b"x")
                .finish(),
        ),
        (
            "f/x",
            Tar::new()
                .file("f", b"plain file")
                .file("f/x", b"x")
                .finish(),
        ),
        // A hardlink whose *target* goes through the symlink.
        (
            "h",
            Tar::new()
                .symlink("a", &somewhere)
                .hardlink("h", "a/passwd")
                .finish(),
        ),
    ];
    for (entry, tar) in cases {
        let w = Ware::new();
        let out = pack(&w, &tar, &[]);
        let why = if entry == "h" {
            "not earlier in the archive"
        } else {
            "not a directory"
        };
        assert_refused(&w, &out, entry, why);
        assert_eq!(
            names_in(probe.path()),
            Vec::<String>::new(),
            "{entry}: something was written to the symlink's target"
        );
    }

    // A directory entry replaces a symlink of the same name (as extraction would after removing
    // it): the file lands in the ware's directory, never in the symlink's target.
    let w = Ware::new();
    let tar = Tar::new()
        .symlink("a", &somewhere)
        .dir("a/")
        .file("a/passwd", b"x")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    assert_eq!(stat(&w, &format!("{id}/a"))["kind"], "dir");
    assert_eq!(ls(&w, &format!("{id}/a")), ["passwd"]);
    let t = unpack_jailed(&w, &id);
    assert!(t.join("a/passwd").is_file());
    assert_eq!(
        names_in(probe.path()),
        Vec::<String>::new(),
        "something was written to the symlink's target"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Hardlinks out of the tree, to missing entries, to directories.

#[test]
fn bad_hardlinks_are_refused() {
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "h",
            "'..'",
            Tar::new().file("x", b"x").hardlink("h", "../x").finish(),
        ),
        (
            "h",
            "'..'",
            Tar::new().hardlink("h", "a/../../etc/passwd").finish(),
        ),
        (
            "h",
            "not earlier in the archive",
            Tar::new().hardlink("h", "missing").finish(),
        ),
        (
            "h",
            "not earlier in the archive",
            Tar::new().hardlink("h", "/etc/passwd").finish(),
        ),
        // Its target comes later: refused like a missing one (tar semantics: links point back).
        (
            "h",
            "not earlier in the archive",
            Tar::new()
                .hardlink("h", "later")
                .file("later", b"x")
                .finish(),
        ),
        (
            "h",
            "not a regular file",
            Tar::new().dir("d/").hardlink("h", "d").finish(),
        ),
        (
            "h",
            "not a regular file",
            Tar::new().dir("d/").hardlink("h", "d/").finish(),
        ),
        (
            "h",
            "not a regular file",
            Tar::new().hardlink("h", ".").finish(),
        ),
        (
            "h",
            "not a regular file",
            Tar::new()
                .symlink("s", "/etc/passwd")
                .hardlink("h", "s")
                .finish(),
        ),
        (
            "self",
            "hardlink to itself",
            Tar::new()
                .file("self", b"x")
                .hardlink("self", "self")
                .finish(),
        ),
        (
            "h",
            "without a target",
            Tar::new().hardlink("h", "").finish(),
        ),
    ];
    for (entry, why, tar) in cases {
        let w = Ware::new();
        let out = pack(&w, &tar, &[]);
        assert_refused(&w, &out, entry, why);
    }

    // A good hardlink, for contrast: one inode on unpack.
    let w = Ware::new();
    let id = assert_packed(&pack(
        &w,
        &Tar::new().file("f", b"data").hardlink("g", "f").finish(),
        &[],
    ));
    assert_eq!(
        stat(&w, &format!("{id}/f"))["hardlink_group"],
        stat(&w, &format!("{id}/g"))["hardlink_group"]
    );
    let t = unpack_jailed(&w, &id);
    assert_eq!(
        std::fs::metadata(t.join("f")).unwrap().ino(),
        std::fs::metadata(t.join("g")).unwrap().ino()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Device nodes and fifos.

fn devices_tar() -> Vec<u8> {
    Tar::new()
        .file("f", b"regular")
        .entry(&Hdr::new("null", CHAR, 0).mode(0o666).dev(1, 3), &[])
        .entry(&Hdr::new("loop", BLOCK, 0).mode(0o660).dev(7, 0), &[])
        .entry(&Hdr::new("fifo", FIFO, 0).mode(0o600), &[])
        .finish()
}

#[test]
fn devices_are_skipped_by_default() {
    let w = Ware::new();
    let id = assert_packed(&pack(&w, &devices_tar(), &[]));
    assert_eq!(ls(&w, &id), ["f"]);
    // Skipping is the same as asking for it.
    assert_eq!(
        assert_packed(&pack(&w, &devices_tar(), &["--devices", "skip"])),
        id
    );
    // Without --quiet, the user is told.
    let out = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_ware"))
            .env_remove("WARE_STORE")
            .arg("--store")
            .arg(w.store())
            .args(["pack", "-"]),
        &devices_tar(),
    );
    assert_eq!(assert_packed(&out), id);
    let err = stderr(&out);
    assert!(
        err.contains("device nodes and fifos left out") && err.contains("3 entries"),
        "notice:\n{err}"
    );
}

#[test]
fn devices_rejected_on_request() {
    for (name, typeflag) in [("null", CHAR), ("loop", BLOCK), ("fifo", FIFO)] {
        let w = Ware::new();
        let tar = Tar::new()
            .file("f", b"regular")
            .entry(&Hdr::new(name, typeflag, 0).dev(1, 3), &[])
            .finish();
        let out = pack(&w, &tar, &["--devices", "reject"]);
        assert_refused(&w, &out, name, "--devices reject");
    }
}

#[test]
fn devices_kept_on_request() {
    let w = Ware::new();
    let id = assert_packed(&pack(&w, &devices_tar(), &["--devices", "keep"]));
    assert_eq!(ls(&w, &id), ["f", "fifo", "loop", "null"]);
    let null = stat(&w, &format!("{id}/null"));
    assert_eq!(null["kind"], "char");
    assert_eq!(null["rdev"], serde_json::json!([1, 3]));
    assert_eq!(null["mode"], 0o666);
    let lp = stat(&w, &format!("{id}/loop"));
    assert_eq!(lp["kind"], "block");
    assert_eq!(lp["rdev"], serde_json::json!([7, 0]));
    assert_eq!(stat(&w, &format!("{id}/fifo"))["kind"], "fifo");

    let t = unpack_jailed(&w, &id);
    let fifo = std::fs::symlink_metadata(t.join("fifo")).expect("fifo");
    assert!(fifo.file_type().is_fifo(), "fifo not recreated");
    if is_root() {
        let null = std::fs::symlink_metadata(t.join("null")).expect("null");
        assert!(
            null.file_type().is_char_device(),
            "char device not recreated"
        );
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(null.permissions().mode() & 0o7777, 0o666);
        let lp = std::fs::symlink_metadata(t.join("loop")).expect("loop");
        assert!(
            lp.file_type().is_block_device(),
            "block device not recreated"
        );
        assert_eq!(lp.rdev(), rustix::fs::makedev(7, 0));
    } else {
        eprintln!("not root: device nodes are not recreated (checked only that unpack succeeds)");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Setuid and setgid files.

fn setid_tar() -> Vec<u8> {
    Tar::new()
        .file_mode("su", 0o4755, b"#!/bin/sh\n")
        .file_mode("sg", 0o2755, b"#!/bin/sh\n")
        .entry(&Hdr::new("shared/", DIR, 0).mode(0o2775), &[])
        .file_mode("plain", 0o755, b"#!/bin/sh\n")
        .finish()
}

#[test]
fn setid_kept_by_default() {
    let w = Ware::new();
    let id = assert_packed(&pack(&w, &setid_tar(), &[]));
    assert_eq!(stat(&w, &format!("{id}/su"))["mode"], 0o4755);
    assert_eq!(stat(&w, &format!("{id}/sg"))["mode"], 0o2755);
    assert_eq!(stat(&w, &format!("{id}/shared"))["mode"], 0o2775);
    assert_eq!(
        assert_packed(&pack(&w, &setid_tar(), &["--setid", "keep"])),
        id
    );
    let t = unpack_jailed(&w, &id);
    assert_eq!(
        std::fs::metadata(t.join("su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::metadata(t.join("sg"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o2755
    );
}

#[test]
fn setid_stripped_on_request() {
    let w = Ware::new();
    let id = assert_packed(&pack(&w, &setid_tar(), &["--setid", "strip"]));
    assert_eq!(stat(&w, &format!("{id}/su"))["mode"], 0o755);
    assert_eq!(stat(&w, &format!("{id}/sg"))["mode"], 0o755);
    // setgid on a directory is not a privilege: kept.
    assert_eq!(stat(&w, &format!("{id}/shared"))["mode"], 0o2775);
    let t = unpack_jailed(&w, &id);
    assert_eq!(
        std::fs::metadata(t.join("su"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
}

#[test]
fn setid_rejected_on_request() {
    let w = Ware::new();
    let out = pack(&w, &setid_tar(), &["--setid", "reject"]);
    assert_refused(&w, &out, "su", "--setid reject");
    let w = Ware::new();
    let tar = Tar::new()
        .file("plain", b"x")
        .file_mode("bin/sg", 0o2711, b"x")
        .finish();
    assert_refused(
        &w,
        &pack(&w, &tar, &["--setid", "reject"]),
        "bin/sg",
        "setuid/setgid",
    );
    // A setgid directory alone is accepted.
    let w = Ware::new();
    let tar = Tar::new()
        .entry(&Hdr::new("shared/", DIR, 0).mode(0o2775), &[])
        .finish();
    assert_packed(&pack(&w, &tar, &["--setid", "reject"]));
}

// ---------------------------------------------------------------------------------------------
// 8. PAX headers lying about sizes.

#[test]
fn pax_size_larger_than_the_data() {
    // 10 bytes present, 1 MiB declared: the archive ends first.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("size", b"1048576")])
        .entry(&Hdr::new("big", REG, 10), b"0123456789")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "big", "truncated");

    // Small enough to stay inline (at most 4096 bytes), still more than what is there.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("size", b"4000")])
        .entry(&Hdr::new("small", REG, 10), b"0123456789")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "small", "truncated");

    // The largest size there is: no overflow, no panic.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("size", u64::MAX.to_string().as_bytes())])
        .entry(&Hdr::new("max", REG, 10), b"0123456789")
        .finish();
    let out = pack(&w, &tar, &[]);
    assert_refused(&w, &out, "tar entry 1", "corrupt or truncated");
}

#[test]
fn pax_size_smaller_than_the_data() {
    // 1000 bytes present, 5 declared: the reader resumes in the middle of the data, where no
    // header is.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("size", b"5")])
        .entry(&Hdr::new("small", REG, 1000), &[b'A'; 1000])
        .finish();
    let out = pack(&w, &tar, &[]);
    // The error names the position where the reader expected the next header.
    assert_refused(&w, &out, "tar entry 2", "corrupt or truncated archive");
}

#[test]
fn pax_size_not_a_number() {
    // GNU tar refuses such an archive ("Malformed extended header: invalid size"); reading it
    // with the header's size instead would make ware see a different tree than other tools.
    for bad in [&b"abc"[..], b"-1", b"", b"10 "] {
        let w = Ware::new();
        let tar = Tar::new()
            .pax(&[("size", bad)])
            .entry(&Hdr::new("f", REG, 10), b"0123456789")
            .finish();
        let out = pack(&w, &tar, &[]);
        assert_refused(&w, &out, "f", "PAX size");
    }
}

#[test]
fn pax_repeated_names_are_refused() {
    // The tar reader takes the first `path`, GNU tar (and POSIX) the last: such an archive
    // would be one tree for ware and another for everyone else.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", b"first"), ("path", b"second")])
        .file("benign", b"abc")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "first", "repeated PAX path");

    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("linkpath", b"a"), ("linkpath", b"/etc/shadow")])
        .symlink("s", "benign")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "s", "repeated PAX linkpath");

    // Repeated sizes that disagree: refused too.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("size", b"3"), ("size", b"700")])
        .entry(&Hdr::new("f", REG, 3), b"abc")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "f", "PAX size");
}

#[test]
fn pax_global_headers_are_not_members() {
    // GNU tar names global headers /tmp/GlobalHead.%p.%n, git archive pax_global_header: neither
    // is a member, so neither is a path to strip or refuse.
    for name in [
        &b"/tmp/GlobalHead.1234.1"[..],
        b"pax_global_header",
        b"../GlobalHead.1",
    ] {
        let w = Ware::new();
        let body = pax_records(&[("comment", b"0123456789abcdef0123456789abcdef01234567")]);
        let tar = Tar::new()
            .entry(&Hdr::new(name, b'g', body.len() as u64), &body)
            .file("f", b"x")
            .finish();
        let out = run_with_stdin(
            Command::new(env!("CARGO_BIN_EXE_ware"))
                .env_remove("WARE_STORE")
                .arg("--store")
                .arg(w.store())
                .args(["pack", "-"]),
            &tar,
        );
        let id = assert_packed(&out);
        assert_eq!(ls(&w, &id), ["f"]);
        assert!(
            !stderr(&out).contains("leading '/'"),
            "{}: spurious notice:\n{}",
            String::from_utf8_lossy(name),
            stderr(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Truncated archives.

fn big_data(n: usize) -> Vec<u8> {
    noise(0x9e3779b97f4a7c15, n)
}

#[test]
fn truncated_in_file_data() {
    // A chunked file (over 4 KiB) cut in the middle of its data.
    let data = big_data(300_000);
    let full = Tar::new()
        .file("first", b"complete")
        .file("big", &data)
        .finish();
    let cut = &full[..512 + 512 + 512 + 150_000];
    let w = Ware::new();
    assert_refused(&w, &pack(&w, cut, &[]), "big", "truncated");

    // An inline file (at most 4 KiB) cut in the middle of its data.
    let full = Tar::new()
        .file("first", b"complete")
        .file("small", &data[..3000])
        .finish();
    let cut = &full[..512 + 512 + 512 + 1000];
    let w = Ware::new();
    assert_refused(&w, &pack(&w, cut, &[]), "small", "truncated");

    // Data complete, padding cut.
    let full = Tar::new()
        .file("first", b"complete")
        .file("padded", &data[..1000])
        .finish();
    let cut = &full[..512 + 512 + 512 + 1000];
    let w = Ware::new();
    assert_refused(&w, &pack(&w, cut, &[]), "tar entry 3", "truncated");
}

#[test]
fn truncated_in_a_header() {
    let full = Tar::new()
        .file("first", b"complete")
        .file("second", b"never read")
        .finish();
    for cut_at in [512 + 512 + 100, 512 + 512 + 511, 300] {
        let w = Ware::new();
        let which = if cut_at < 512 {
            "tar entry 1"
        } else {
            "tar entry 2"
        };
        assert_refused(&w, &pack(&w, &full[..cut_at], &[]), which, "truncated");
    }
}

#[test]
fn truncated_compressed_archives() {
    let data = big_data(200_000);
    let plain = Tar::new()
        .file("first", b"complete")
        .file("big", &data)
        .finish();
    let mut gz = flate2_free_gzip(&plain);
    gz.truncate(gz.len() / 2);
    let w = Ware::new();
    let out = pack(&w, &gz, &[]);
    assert_refused(&w, &out, "big", "");
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("truncated") || err.contains("corrupt") || err.contains("incomplete"),
        "{err}"
    );
}

/// Gzips with the system `gzip` (no compression crate among the test's dependencies).
fn flate2_free_gzip(data: &[u8]) -> Vec<u8> {
    let mut c = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = c.stdin.take().expect("stdin");
    let data = data.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().expect("gzip");
    t.join().expect("writer").expect("write to gzip");
    assert!(out.status.success());
    out.stdout
}

// ---------------------------------------------------------------------------------------------
// 10. NUL inside names.

#[test]
fn nul_in_pax_names_is_refused() {
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", b"dir/a\0b")])
        .file("benign", b"x")
        .finish();
    let out = pack(&w, &tar, &[]);
    assert_refused(&w, &out, "dir/a", "NUL");

    // "evil\0" cut short by a C reader would be "evil"; here it is refused.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", b"etc/passwd\0.txt")])
        .file("benign", b"x")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "etc/passwd", "NUL");

    // In a symlink target.
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("linkpath", b"/etc\0/../x")])
        .symlink("s", "benign")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), "s", "NUL");
}

#[test]
fn control_characters_in_names_are_escaped_on_stderr() {
    // A hostile name must not drive the user's terminal through an error message...
    let hostile = b"\x1b[2J\x1b]0;pwned\x07evil";
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", &[&b"../"[..], hostile].concat())])
        .file("benign", b"x")
        .finish();
    let out = pack(&w, &tar, &[]);
    assert_refused(&w, &out, "evil", "'..'");
    let err = stderr(&out);
    assert!(
        !err.bytes().any(|b| b == 0x1b || b == 0x07),
        "raw control characters in the error: {err:?}"
    );

    // ... nor through a notice (the first skipped device is named).
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", hostile)])
        .entry(&Hdr::new("benign", FIFO, 0), &[])
        .file("f", b"x")
        .finish();
    let out = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_ware"))
            .env_remove("WARE_STORE")
            .arg("--store")
            .arg(w.store())
            .args(["pack", "-"]),
        &tar,
    );
    assert_packed(&out);
    let err = stderr(&out);
    assert!(
        err.contains("evil"),
        "the notice does not name the entry: {err:?}"
    );
    assert!(
        !err.bytes().any(|b| b == 0x1b || b == 0x07),
        "raw control characters in a notice: {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 11. 100 000 entries in one directory.

#[test]
fn hundred_thousand_entries_in_one_directory() {
    const N: usize = 100_000;
    let mut tar = Tar::new();
    tar.0.reserve(N * 1024 + 4096);
    tar.dir("dir/");
    for i in 0..N {
        let name = format!("dir/f{i:06}");
        if i % 10 == 0 {
            tar.file(name, i.to_string().as_bytes());
        } else {
            tar.file(name, b"");
        }
    }
    let tar = tar.finish();
    let w = Ware::new();
    let id = assert_packed(&pack(&w, &tar, &[]));
    let listing = w.ok(["ls", &format!("{id}/dir")]);
    assert_eq!(listing.lines().count(), N);
    assert_eq!(w.ok(["cat", &format!("{id}/dir/f099990")]), "99990");
    assert_eq!(w.ok(["cat", &format!("{id}/dir/f000001")]), "");
    let t = unpack_jailed(&w, &id);
    let entries = std::fs::read_dir(t.join("dir")).expect("read dir").count();
    assert_eq!(entries, N);
    assert_eq!(std::fs::read(t.join("dir/f050000")).unwrap(), b"50000");
}

// ---------------------------------------------------------------------------------------------
// 12. Deep paths.

fn deep_path(levels: usize) -> String {
    // `levels` components in all: levels-1 directories and the file.
    let mut p = "d/".repeat(levels - 1);
    p.push('f');
    p
}

#[test]
fn ten_thousand_levels_are_refused() {
    let path = deep_path(10_000);
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", path.as_bytes())])
        .file("benign", b"deep")
        .finish();
    let out = pack(&w, &tar, &[]);
    assert_refused(&w, &out, &path, "deeper than 4096 levels");
}

#[test]
fn depth_limit_is_exactly_4096() {
    let w = Ware::new();
    let ok = deep_path(4096);
    let tar = Tar::new()
        .pax(&[("path", ok.as_bytes())])
        .file("benign", b"at the limit")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    assert_eq!(w.ok(["cat", &format!("{id}/{ok}")]), "at the limit");

    let w = Ware::new();
    let over = deep_path(4097);
    let tar = Tar::new()
        .pax(&[("path", over.as_bytes())])
        .file("benign", b"over")
        .finish();
    assert_refused(&w, &pack(&w, &tar, &[]), &over, "deeper than 4096 levels");
}

#[test]
fn a_thousand_levels_pack() {
    let path = deep_path(1000);
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", path.as_bytes())])
        .file("benign", b"bottom of the well\n")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    assert_eq!(
        w.ok(["cat", &format!("{id}/{path}")]),
        "bottom of the well\n"
    );
    assert_eq!(stat(&w, &format!("{id}/{path}"))["size"], 19);
    w.ok(["fsck"]);
}

#[test]
fn a_thousand_levels_unpack() {
    // (Overflowed a rayon worker's stack while the unpack walk ran on the pool.)
    let path = deep_path(1000);
    let w = Ware::new();
    let tar = Tar::new()
        .pax(&[("path", path.as_bytes())])
        .file("benign", b"bottom of the well\n")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    let t = unpack_jailed(&w, &id);
    assert_eq!(
        std::fs::read(t.join(&path)).expect("deepest file"),
        b"bottom of the well\n"
    );

    // The deepest a ware may be (4096 levels, over PATH_MAX on disk) unpacks too.
    let w = Ware::new();
    let deepest = deep_path(4096);
    let tar = Tar::new()
        .pax(&[("path", deepest.as_bytes())])
        .file("benign", b"at the limit")
        .finish();
    let id = assert_packed(&pack(&w, &tar, &[]));
    let t = unpack_jailed(&w, &id);
    assert_eq!(read_beneath(&t, &deepest), b"at the limit");
}

/// Reads a file whose path may be longer than PATH_MAX, one directory at a time.
fn read_beneath(root: &Path, path: &str) -> Vec<u8> {
    use rustix::fs::{Mode, OFlags};
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

// ---------------------------------------------------------------------------------------------
// 13. Huge declared sizes with little data.

#[test]
fn huge_declared_sizes_fail_fast() {
    const EIGHT_GIB: u64 = 8 << 30;
    let data = b"0123456789";
    let mut octal12 = Hdr::new("octal", REG, EIGHT_GIB);
    octal12.size_octal12 = true;
    let mut b256 = Hdr::new("base256", REG, EIGHT_GIB);
    b256.size_base256 = true;
    b256.magic = Magic::Gnu;
    let mut b256_huge = Hdr::new("base256-huge", REG, 1 << 62);
    b256_huge.size_base256 = true;
    b256_huge.magic = Magic::Gnu;
    let octal11 = Hdr::new("octal-max", REG, 0o77777777777); // 8 GiB - 1, the largest 11-digit size
    for h in [octal12, b256, b256_huge, octal11] {
        let w = Ware::new();
        let tar = Tar::new().entry(&h, data).finish();
        let start = Instant::now();
        let out = pack(&w, &tar, &[]);
        assert_refused(&w, &out, std::str::from_utf8(&h.name).unwrap(), "truncated");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "took {:?}",
            start.elapsed()
        );
    }

    // Entries whose data is skipped rather than read (a directory, a PAX header, a GNU long name)
    // declaring 8 GiB: the skip hits the end of the input.
    let mut dir = Hdr::new("dir/", DIR, EIGHT_GIB);
    dir.size_octal12 = true;
    let mut pax = Hdr::new("./PaxHeaders/x", PAX, EIGHT_GIB);
    pax.size_octal12 = true;
    let mut gnu = Hdr::new("././@LongLink", GNU_LONGNAME, EIGHT_GIB);
    gnu.size_octal12 = true;
    gnu.magic = Magic::Gnu;
    for (h, body) in [
        (dir, &b""[..]),
        (pax, &b"12 path=abc\n"[..]),
        (gnu, &b"long-name\0"[..]),
    ] {
        let w = Ware::new();
        let tar = Tar::new().entry(&h, body).file("after", b"x").finish();
        let out = pack(&w, &tar, &[]);
        assert_refused(&w, &out, "tar entry", "truncated");
    }
}

// ---------------------------------------------------------------------------------------------
// 14. Corrupt header checksums.

#[test]
fn corrupt_header_checksum_is_refused() {
    // Wrong sum in the first header.
    let mut h = Hdr::new("f", REG, 1);
    h.checksum_delta = 1;
    let w = Ware::new();
    assert_refused(
        &w,
        &pack(&w, &Tar::new().entry(&h, b"x").finish(), &[]),
        "tar entry 1",
        "checksum",
    );

    // A flipped byte in the second header's name, after a good entry.
    let mut tar = Tar::new().file("good", b"x").file("second", b"y").finish();
    tar[1024] ^= 0x20;
    let w = Ware::new();
    assert_refused(&w, &pack(&w, &tar, &[]), "tar entry 2", "checksum");

    // A checksum field that is not a number at all.
    let mut tar = Tar::new().file("f", b"x").finish();
    tar[148..156].copy_from_slice(b"zzzzzz\0 ");
    let w = Ware::new();
    assert_refused(&w, &pack(&w, &tar, &[]), "tar entry 1", "corrupt");
}

// ---------------------------------------------------------------------------------------------
// 15. Not a tar archive at all.

#[test]
fn empty_input_is_not_a_tar_archive() {
    let w = Ware::new();
    let out = pack(&w, b"", &[]);
    assert_refused(&w, &out, "<tar input>", "not a tar archive");

    // Only the end-of-archive blocks.
    let w = Ware::new();
    assert_refused(
        &w,
        &pack(&w, &[0u8; 1024], &[]),
        "<tar input>",
        "not a tar archive",
    );

    // Text, shorter than a header.
    let w = Ware::new();
    assert_refused(
        &w,
        &pack(&w, b"hello, world\n", &[]),
        "tar entry 1",
        "corrupt or truncated",
    );
}
