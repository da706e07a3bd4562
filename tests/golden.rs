//! Golden vectors of format v1: fixed trees and their ware IDs. If one of these fails, the
//! format changed: an ID that users pinned would no longer match. Change the format only on
//! purpose, with a new format version, docs/FORMAT.md and new vectors in the same commit.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// Every rule of the directory path: inline and chunked files, a file of more chunks than an
/// entry lists (a file node), a directory large enough to split, modes with setuid, empty
/// file and directory, a non-UTF-8 name, a symlink, a hardlink, an xattr. Owners are set by
/// filter so the ID does not depend on who runs the test.
const TREE_V1: &str = "bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia";
/// Owners, normalised vs kept mtimes, devices and fifos, through a tar built byte by byte.
const TAR_V1: &str = "bafyr4ibznjgifp4y72dwbwhqa3ao36krtmtwzamfdvqarvbfib7k4nzvue";
const TAR_V1_KEEP: &str = "bafyr4igjamgjp5yutx64z3kbjbxbfxucjsnmqkhzbmtzlyjshv7cu5v6jm";

fn file(p: &Path, data: &[u8], mode: u32) {
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn golden_tree(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("many")).unwrap();
    std::fs::create_dir_all(root.join("e")).unwrap();
    file(&root.join("a.txt"), b"hello\n", 0o644);
    rustix::fs::lsetxattr(
        root.join("a.txt").as_path(),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    file(&root.join("bin/tool"), &noise(1, 5000), 0o755);
    file(&root.join("big.bin"), &noise(2, 6 << 20), 0o644);
    file(&root.join("suid"), b"#!/bin/sh\n", 0o4755);
    file(&root.join("empty"), b"", 0o600);
    file(&root.join(OsStr::from_bytes(b"caf\xe9")), b"x", 0o644);
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("bin/tool"), root.join("hard")).unwrap();
    for i in 0..9000 {
        file(&root.join(format!("many/f{i:05}")), b"", 0o644);
    }
    for d in ["", "bin", "many"] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(root.join("e"), std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn golden_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut entry = |path: &str,
                     kind: tar::EntryType,
                     mode: u32,
                     uid: u64,
                     gid: u64,
                     data: &[u8],
                     link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    entry("./", tar::EntryType::Directory, 0o755, 0, 0, b"", None);
    entry("etc/", tar::EntryType::Directory, 0o755, 0, 0, b"", None);
    entry(
        "etc/shadow",
        tar::EntryType::Regular,
        0o640,
        0,
        42,
        b"root:*:1::::::\n",
        None,
    );
    entry(
        "home/user/notes",
        tar::EntryType::Regular,
        0o600,
        1000,
        1000,
        &noise(3, 300_000),
        None,
    );
    entry(
        "nobody",
        tar::EntryType::Regular,
        0o644,
        65534,
        65534,
        b"n",
        None,
    );
    entry("dev/null", tar::EntryType::Char, 0o666, 0, 0, b"", None);
    entry("run/fifo", tar::EntryType::Fifo, 0o600, 0, 0, b"", None);
    entry(
        "etc/shadow-",
        tar::EntryType::Link,
        0o640,
        0,
        42,
        b"",
        Some("etc/shadow"),
    );
    b.into_inner().unwrap()
}

#[test]
fn directory_vector() {
    let w = Ware::new();
    let src = w.path("golden");
    golden_tree(&src);
    let id = w.ok([
        OsStr::new("pack"),
        OsStr::new("--uid"),
        OsStr::new("1000"),
        OsStr::new("--gid"),
        OsStr::new("100"),
        src.as_os_str(),
    ]);
    assert_eq!(
        id.trim(),
        TREE_V1,
        "format v1 changed: the golden tree has another ID"
    );
    // The vector exercises what it claims: a split directory and a file node.
    let many = w.ok(["--json", "ls", &format!("{TREE_V1}/many")]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&many)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        9000
    );
}

#[test]
fn tar_vectors() {
    let w = Ware::new();
    let tar = golden_tar();
    let out = w.pack_stdin(&tar, &["--devices", "keep"]);
    assert_eq!(
        stdout_ok(&out),
        TAR_V1,
        "format v1 changed: the golden tar has another ID"
    );
    let out = w.pack_stdin(&tar, &["--devices", "keep", "--keep-mtime"]);
    assert_eq!(
        stdout_ok(&out),
        TAR_V1_KEEP,
        "format v1 changed: the golden tar (kept mtimes) has another ID"
    );
}

/// A profile of the golden tree (its root node, a chunk read twice as often as another) and
/// the set that carries it to a warehouse: their bytes are pinned by these CIDs (the set's is
/// the hash of its bytes, named as a node would be).
const PROFILE_V1: &str = "bafyr4ic77ebfngxg2kn63474koutj44qsbghyvdd6yl5fzgotmvtcipjuu";
const PROFILES_V1: &str = "bafyr4igkv5ry3ftinlwbduytpjfeyto6dqbfjcfofyc6zkaq5zlljf6uwe";

#[test]
fn profile_vectors() {
    use ware_store::profile::{Profile, ProfileBlock, ProfileSet};
    use ware_store::{ChunkId, NodeId};
    let ware: ware_store::Cid = TREE_V1.parse().unwrap();
    let p = Profile {
        format: "warefs-profile/1".into(),
        ware,
        runs: 3,
        blocks: vec![
            ProfileBlock(ware, 0),
            ProfileBlock(ChunkId::of(b"golden chunk 1").to_cid(), 0),
            ProfileBlock(ChunkId::of(b"golden chunk 2").to_cid(), 2),
        ],
    };
    let (id, bytes) = p.encode();
    assert_eq!(id.to_string(), PROFILE_V1, "the profile format changed");
    assert_eq!(Profile::decode("golden", &bytes).unwrap(), p);
    let mut set = ProfileSet::new(ware);
    set.profiles.insert(format!("ware:{TREE_V1}"), p.clone());
    set.profiles
        .insert(format!("run:{TAR_V1}:/data"), Profile::first(ware, &[ware]));
    let bytes = set.encode();
    assert_eq!(
        NodeId::of(&bytes).to_string(),
        PROFILES_V1,
        "the warehouse profile set format changed"
    );
    assert_eq!(ProfileSet::decode(&ware, "golden", &bytes).unwrap(), set);
}

/// A warehouse catalog of the golden tree and tar (docs/FORMAT.md, "Catalogs"): a push of the
/// tree under `base`, the page both wares are folded into, and the head naming it. The push's
/// and head's bytes are pinned as nodes would be, the page by its name (BLAKE3 hex).
const CATALOG_PUSH_V1: &str = "bafyr4icktnsqegwlhfrs2wwc7bd4z3qmvdumnikbnbj2d7d72e5p3kgryu";
const CATALOG_PAGE_V1: &str = "e768f682b3cabc8fd7e8d06e89c39331603a8ce880d0a9778466827c619ba501";
const CATALOG_HEAD_V1: &str = "bafyr4ig737opjfk4d2b2oo3fgmb2ksoe2ws2sa4qqueupsnwjaauiqge7i";

#[test]
fn catalog_vectors() {
    use ware_store::NodeId;
    use ware_store::catalog::{Entry, Head, Named, Page, PageRef, Push, merge, push_key};
    let (tree, tar): (ware_store::Cid, ware_store::Cid) =
        (TREE_V1.parse().unwrap(), TAR_V1.parse().unwrap());
    let at = 1_800_000_000;
    let e = |ware, bytes, entries, names: &[&str]| Entry {
        ware,
        bytes,
        entries,
        at,
        names: names
            .iter()
            .map(|n| Named {
                name: n.to_string(),
                at,
            })
            .collect(),
    };
    let push = Push::new(e(tree, 6_300_000, 9_020, &["base"]));
    let bytes = push.encode();
    assert_eq!(
        NodeId::of(&bytes).to_string(),
        CATALOG_PUSH_V1,
        "the catalog push format changed"
    );
    assert_eq!(Push::decode(&bytes).unwrap(), push);
    let mut wares = Vec::new();
    merge(&mut wares, [push.entry.clone(), e(tar, 12, 7, &[])]);
    let page = Page::new(wares);
    let (bytes, name) = page.encode();
    assert_eq!(name, CATALOG_PAGE_V1, "the catalog page format changed");
    assert_eq!(Page::decode(&name, &bytes).unwrap(), page);
    let mut head = Head::new();
    head.pages.push(PageRef {
        first: page.wares[0].ware,
        name,
        count: 2,
    });
    head.folded.push(push_key(at, 0x0123_4567_89ab_cdef));
    let bytes = head.encode();
    assert_eq!(
        NodeId::of(&bytes).to_string(),
        CATALOG_HEAD_V1,
        "the catalog head format changed"
    );
    assert_eq!(Head::decode(&bytes).unwrap(), head);
}
