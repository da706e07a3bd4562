//! Hostile tar archives. The table of cases (`cases.rs`) runs in process; the tests here run
//! the real `ware` binary for what only it shows.
//!
//! Every case asserts what a user would notice: either a clear refusal (exit code 1, not a
//! panic; stderr starts with `ware: error:` and names the offending entry; the store holds no
//! ware and `ware fsck` is clean), or a safe ware, which `ware unpack` materialises without
//! creating anything outside the target directory.
//!
//! The archives are written header by header (`tar.rs`).

#[path = "../common/mod.rs"]
mod common;
use common::*;

mod cases;
mod tar;
use tar::*;

use std::io::{Read, Write};

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// [`pack`] without `--quiet`: the notices show on stderr.
fn pack_loud(w: &Ware, tar: &[u8]) -> Output {
    run_with_stdin(w.loud_command().args(["pack", "-"]), tar)
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

#[track_caller]
// ---------------------------------------------------------------------------------------------
// The table, in process.
#[test]
fn hostile_archives_table() {
    let probe = tempfile::Builder::new()
        .prefix("ware-hostile-somewhere")
        .tempdir_in(scratch())
        .expect("tempdir");
    let somewhere = probe
        .path()
        .to_str()
        .expect("utf-8 scratch path")
        .to_string();
    cases::run_table(cases::cases(&somewhere));
    assert_eq!(
        cases::names_in(probe.path()),
        Vec::<String>::new(),
        "something was written to a symlink's target"
    );
}

/// Refusals through the binary: exit code 1, `ware: error:` naming the entry, nothing on stdout,
/// no ware, a clean fsck, nothing written beside the store.
#[test]
fn refusals_through_the_binary() {
    let mut bad_sum = Hdr::new("f", REG, 1);
    bad_sum.checksum_delta = 1;
    let cases: Vec<(&str, &str, Vec<u8>, &[&str])> = vec![
        (
            "../evil",
            "'..'",
            Tar::new()
                .file("fine", b"ok")
                .file("../evil", b"x")
                .finish(),
            &[],
        ),
        (
            "../pax-evil",
            "'..'",
            Tar::new()
                .pax(&[("path", b"../pax-evil")])
                .file("benign", b"x")
                .finish(),
            &[],
        ),
        (
            "tar entry 1",
            "checksum",
            Tar::new().entry(&bad_sum, b"x").finish(),
            &[],
        ),
        ("<tar input>", "not a tar archive", Vec::new(), &[]),
        (
            "fifo",
            "--devices reject",
            Tar::new().entry(&Hdr::new("fifo", FIFO, 0), &[]).finish(),
            &["--devices", "reject"],
        ),
        (
            "su",
            "--setid reject",
            cases::setid_tar(),
            &["--setid", "reject"],
        ),
    ];
    for (entry, why, tar, flags) in cases {
        let w = Ware::new();
        let out = pack(&w, &tar, flags);
        assert_refused(&w, &out, entry, why);
        assert_eq!(
            cases::names_in(w.dir.path())
                .iter()
                .filter(|n| *n != "store")
                .count(),
            0,
            "{entry}: pack wrote outside its store"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The writer's archives are what GNU tar reads; notices reach the terminal.

#[test]
fn gnu_tar_reads_the_writers_archives() {
    let long = "l/".repeat(60) + "file";
    let tar = cases::writer_sample(&long);
    let mut c = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU tar (scripts/setup installs it)");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(&tar)
        .expect("write to tar");
    let out = c.wait_with_output().expect("tar");
    assert!(
        out.status.success(),
        "GNU tar rejects the writer's archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains(&long) && listed.contains("g/long-gnu-name"),
        "GNU tar lists:\n{listed}"
    );
}

/// Notices (not errors) reach the user on stderr unless --quiet.
#[test]
fn notices_reach_stderr() {
    for (tar, says) in [
        (
            Tar::new().dir("/etc/").file("/etc/evil", b"evil").finish(),
            &["leading '/' removed"][..],
        ),
        (
            cases::devices_tar(),
            &["device nodes and fifos left out", "3 entries"][..],
        ),
    ] {
        let w = Ware::new();
        let loud = pack_loud(&w, &tar);
        let id = assert_packed(&loud);
        for s in says {
            assert!(
                stderr(&loud).contains(s),
                "no notice {s:?}:\n{}",
                stderr(&loud)
            );
        }
        // --quiet (the Ware helper's default) says nothing and packs the same ware.
        let quiet = pack(&w, &tar, &[]);
        assert_eq!(assert_packed(&quiet), id);
        assert!(!stderr(&quiet).contains(says[0]), "{}", stderr(&quiet));
    }
}

// ---------------------------------------------------------------------------------------------
// Truncated compressed archives (gzip, decompressed on the way in).

fn big_data(n: usize) -> Vec<u8> {
    noise(0x9e3779b97f4a7c15, n)
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
// Control characters in names, on the terminal.

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
    let out = pack_loud(&w, &tar);
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
// Huge declared sizes with little data, under a data-size limit.

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
