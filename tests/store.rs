//! Store behaviour through the real binary: determinism, dedup, tar input, corruption caught by
//! fsck and by reads, a busy store, unpack safety rules, unprivileged unpack.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// A small tree with one file of many chunks.
fn sample(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("small.txt"), b"hello\n").unwrap();
    std::fs::write(dir.join("sub/big.bin"), noise(7, 8 << 20)).unwrap();
    std::fs::write(dir.join("sub/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../small.txt", dir.join("sub/link")).unwrap();
    std::fs::hard_link(dir.join("small.txt"), dir.join("sub/hard.txt")).unwrap();
}

fn stat_num(w: &Ware, key: &str) -> u64 {
    w.stats()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has no {key}"))
}

#[test]
fn same_tree_same_id_across_stores_and_after_touch() {
    let a = Ware::new();
    let src = a.path("src");
    sample(&src);
    let id = a.pack(&src);
    let b = Ware::new();
    assert_eq!(b.pack(&src), id, "a second store gives another ID");
    let status = Command::new("touch")
        .arg("-d")
        .arg("2001-02-03")
        .arg(src.join("small.txt"))
        .arg(src.join("sub"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        a.pack(&src),
        id,
        "touch changed the ID although mtimes are normalised"
    );
    let kept1 = a.ok([
        OsStr::new("pack"),
        OsStr::new("--keep-mtime"),
        src.as_os_str(),
    ]);
    Command::new("touch")
        .arg("-d")
        .arg("2011-02-03")
        .arg(src.join("small.txt"))
        .status()
        .unwrap();
    let kept2 = a.ok([
        OsStr::new("pack"),
        OsStr::new("--keep-mtime"),
        src.as_os_str(),
    ]);
    assert_ne!(kept1, kept2, "--keep-mtime must make the ID follow mtimes");
    // A content change changes the ID.
    std::fs::write(src.join("small.txt"), b"hellO\n").unwrap();
    assert_ne!(a.pack(&src), id);
}

#[test]
fn repacking_adds_nothing_and_an_insertion_adds_few_chunks() {
    let w = Ware::new();
    let src = w.path("src");
    std::fs::create_dir(&src).unwrap();
    let data = noise(42, 16 << 20);
    std::fs::write(src.join("big"), &data).unwrap();
    w.pack(&src);
    let chunks = stat_num(&w, "chunks");
    let stored = stat_num(&w, "stored_bytes");
    assert!(chunks > 100, "16 MiB should make many chunks, got {chunks}");
    w.pack(&src);
    assert_eq!(
        stat_num(&w, "chunks"),
        chunks,
        "packing the same tree again added chunks"
    );
    assert_eq!(
        stat_num(&w, "stored_bytes"),
        stored,
        "packing the same tree again stored bytes"
    );
    // Insert 100 bytes in the middle: content-defined chunking re-cuts only around the edit.
    let mut edited = data[..8 << 20].to_vec();
    edited.extend_from_slice(&[0xAB; 100]);
    edited.extend_from_slice(&data[8 << 20..]);
    std::fs::write(src.join("big"), &edited).unwrap();
    let id = w.pack(&src);
    let added = stat_num(&w, "chunks") - chunks;
    assert!(
        (1..=4).contains(&added),
        "an insertion added {added} chunks"
    );
    let out = w.run(["cat", &format!("{id}/big")]);
    assert!(out.status.success());
    assert!(
        out.stdout == edited,
        "cat gave other bytes than were packed"
    );
}

#[test]
fn a_tar_of_the_tree_gives_the_same_id_as_the_tree() {
    let w = Ware::new();
    let src = w.path("src");
    sample(&src);
    rustix::fs::lsetxattr(
        src.join("small.txt").as_path(),
        "user.note",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let id = w.pack(&src);
    let tar = w.path("t.tar");
    let ok = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--format=posix",
            "--numeric-owner",
            "-C",
        ])
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(w.pack(&tar), id, "tar file");
    let bytes = std::fs::read(&tar).unwrap();
    let out = w.pack_stdin(&bytes, &[]);
    assert_eq!(stdout_ok(&out), id, "tar on stdin");
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        let st = Command::new(tool).arg("-kq").arg(&tar).status().unwrap();
        assert!(st.success(), "{tool}");
        let compressed = w.path(&format!("t.tar.{ext}"));
        assert_eq!(w.pack(&compressed), id, "{tool}-compressed tar");
    }
}

#[test]
fn corruption_is_named_by_fsck_and_never_served() {
    let w = Ware::new();
    let src = w.path("src");
    sample(&src);
    let id = w.pack(&src);
    w.ok(["fsck"]);
    let damaged = w.ok(["debug", "damage", &format!("{id}/sub/big.bin")]);
    let chunk = damaged
        .trim()
        .strip_prefix("damaged chunk ")
        .expect("damage names a chunk")
        .to_string();
    let out = w.run(["fsck"]);
    assert_eq!(out.status.code(), Some(4), "fsck must exit 4 on corruption");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&chunk),
        "fsck output does not name {chunk}"
    );
    let out = w.run(["cat", &format!("{id}/sub/big.bin")]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "cat of a corrupt file must exit 4"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&chunk),
        "cat error does not name the chunk"
    );
    let good = std::fs::read(src.join("sub/big.bin")).unwrap();
    assert!(
        out.stdout.len() < good.len() && good.starts_with(&out.stdout),
        "cat served bytes past the corrupt chunk"
    );
    // Other files keep working.
    let out = w.run(["cat", &format!("{id}/small.txt")]);
    assert_eq!(out.stdout, b"hello\n");
    // A damaged directory node is named too.
    let damaged = w.ok(["debug", "damage", &format!("{id}/sub")]);
    let node = damaged
        .trim()
        .strip_prefix("damaged node ")
        .unwrap()
        .to_string();
    let out = w.run(["ls", &format!("{id}/sub")]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&node));
    // Unpack stops with the error rather than writing wrong bytes.
    let out = w.run([
        OsStr::new("unpack"),
        OsStr::new(&id),
        w.path("out").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn bit_flips_in_the_database_files_are_caught() {
    let w = Ware::new();
    let src = w.path("src");
    sample(&src);
    let id = w.pack(&src);
    // Flip a byte in the middle of every blob file (where the chunks live).
    let mut flipped = 0;
    for e in std::fs::read_dir(w.store()).unwrap() {
        let p = e.unwrap().path();
        if p.extension() == Some(OsStr::new("blob")) {
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0x10;
            std::fs::write(&p, b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped > 0, "no blob file to damage");
    let out = w.run(["fsck"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "fsck: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = w.run([
        OsStr::new("unpack"),
        OsStr::new(&id),
        w.path("out").as_os_str(),
    ]);
    assert!(!out.status.success(), "unpack of a damaged store succeeded");
    assert_ne!(
        out.status.code(),
        Some(101),
        "panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_store_in_use_gives_a_clear_error() {
    let w = Ware::new();
    // `pack -` holds the store while it waits for its tar stream.
    let mut holder = w
        .command()
        .args(["pack", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = w.store().join("ware.lock");
    let mut waited = 0;
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == holder.id().to_string()) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        waited += 1;
        assert!(waited < 500, "holder never took the store");
    }
    let out = w.run(["stats"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains(&holder.id().to_string()),
        "{err}"
    );
    // Once the holder is gone, the store opens and is clean.
    w.ok(["fsck"]);
}

#[test]
fn unpack_refuses_a_non_empty_target_and_unknown_ids() {
    let w = Ware::new();
    let src = w.path("src");
    sample(&src);
    let id = w.pack(&src);
    let target = w.path("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep-me"), b"mine").unwrap();
    let out = w.run([OsStr::new("unpack"), OsStr::new(&id), target.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(std::fs::read(target.join("keep-me")).unwrap(), b"mine");
    // An ID the store does not have: exit 3, naming it.
    let other = Ware::new();
    let missing = other.pack(&{
        let p = other.path("x");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("f"), b"other").unwrap();
        p
    });
    let out = w.run(["ls", &missing]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing));
    let out = w.run(["ls", &format!("{id}/no/such/path")]);
    assert_eq!(out.status.code(), Some(3));
    // Something that could be a name but is none: not found, naming it.
    let out = w.run(["ls", "not-an-id"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-id"));
    // Neither an ID nor a possible name: a usage error, naming it.
    let out = w.run(["ls", "not an id!"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an id!"));
}

#[test]
fn unprivileged_unpack_skips_owners_with_one_notice() {
    if !require(
        is_root(),
        "needs root to create a store and switch to an unprivileged user",
    ) {
        return;
    }
    let w = Ware::new();
    let src = w.path("src");
    sample(&src);
    std::os::unix::fs::lchown(src.join("small.txt"), Some(1234), Some(1234)).unwrap();
    let id = w.pack(&src);
    let st = Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(w.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let target = w.path("out");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary_for_others())
        .arg("--store")
        .arg(w.store())
        .arg("unpack")
        .arg(&id)
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("notice: not running as root").count(),
        1,
        "{err}"
    );
    let a = snapshot(&src, false, false, &[]);
    let b = snapshot(&target, false, false, &[]);
    assert_same(&a, &b);
}
