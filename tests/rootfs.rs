//! Real root filesystems (debootstrap, from scripts/rootfs): pack, unpack, and compare with the
//! original entry by entry (content, modes, owners, symlinks, hardlinks, xattrs); the tar of the
//! tree gives the same ID.

mod common;

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use common::*;

fn round_trip(kind: &str) {
    let Some(tree) = rootfs(kind) else {
        return;
    };
    let w = Ware::new();
    let id = w.pack(&tree);
    let out = w.path("out");
    w.ok([OsStr::new("unpack"), OsStr::new(&id), out.as_os_str()]);
    // Device nodes are left out by the default filter; everything else must be identical.
    let skip = ["char", "block", "fifo", "socket"];
    let a = snapshot(&tree, false, true, &skip);
    let b = snapshot(&out, false, true, &skip);
    assert!(a.len() > 5000, "{kind} rootfs has only {} entries", a.len());
    assert_same(&a, &b);
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference", "-x", "dev"])
        .arg(&tree)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "diff: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // Programs are where a user expects them, and readable through `ware cat`.
    let ls = w.ok(["ls", &format!("{id}/usr/bin")]);
    assert!(ls.contains(" dpkg\n"), "no dpkg in usr/bin");
    let cat = w.run(["cat", &format!("{id}/usr/bin/dpkg")]);
    assert_eq!(
        cat.stdout,
        std::fs::read(tree.join("usr/bin/dpkg")).unwrap()
    );
    // A tar stream of the same tree gives the same ID.
    let mut tar = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--format=posix",
            "--numeric-owner",
            "-C",
        ])
        .arg(&tree)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pack = w
        .command()
        .args(["pack", "-"])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert_eq!(
        stdout_ok(&pack),
        id,
        "tar of the {kind} rootfs gives another ID"
    );
    w.ok(["fsck"]);
}

#[test]
fn small_rootfs_round_trip() {
    round_trip("small");
}

#[test]
fn large_rootfs_round_trip() {
    round_trip("large");
}
