//! Access profiles learned from real mounts, through the `ware` binary: a mount records the
//! order in which a ware's nodes and chunks are first read, and keeps it as the ware's profile
//! when it ends; a later mount merges into it (reads served from the daemon's caches count);
//! `ware profile ls|show|rm` with their errors and exit codes.
//!
//! Needs root and /dev/fuse: without them each test prints why it skips (and fails under CI).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;

use common::*;
use ware_store::ChunkId;

/// The CIDs of the chunks a file of `data` is cut into, in order.
fn chunk_cids(data: &[u8]) -> Vec<String> {
    ware_store::chunk::chunker(data)
        .map(|c| ChunkId::of(&c.expect("chunk").data).to_cid().to_string())
        .collect()
}

fn mount(w: &Ware, id: &str, dir: &str) -> std::path::PathBuf {
    let mnt = w.path(dir);
    std::fs::create_dir_all(&mnt).unwrap();
    w.ok(["mount", id, mnt.to_str().unwrap()]);
    mnt
}

fn umount(w: &Ware, mnt: &Path) {
    w.ok(["umount", mnt.to_str().unwrap()]);
}

fn show(w: &Ware, key: &str) -> serde_json::Value {
    serde_json::from_str(&w.ok(["--json", "profile", "show", key])).expect("profile json")
}

/// The profile's blocks as (CID, recordings that missed it).
fn blocks(p: &serde_json::Value) -> Vec<(String, u64)> {
    p["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| (b[0].as_str().unwrap().to_string(), b[1].as_u64().unwrap()))
        .collect()
}

fn position(list: &[(String, u64)], cid: &str) -> usize {
    list.iter()
        .position(|(c, _)| c == cid)
        .unwrap_or_else(|| panic!("{cid} is not in the profile {list:?}"))
}

#[test]
fn a_mount_learns_the_order_of_first_reads_and_a_later_mount_merges_into_it() {
    if !can_mount() {
        return;
    }
    let w = Ware::new();
    let (a, b, c) = (noise(1, 700_000), noise(4, 500_000), noise(6, 300_000));
    let id = w.pack_files("src", &[("a", &a), ("d/b", &b), ("c", &c)]);
    let key = format!("ware:{id}");
    let (ca, cb, cc) = (chunk_cids(&a), chunk_cids(&b), chunk_cids(&c));
    assert!(ca.len() > 1 && cb.len() > 1, "the files must span chunks");

    // Nothing is learned before a mount has ended.
    assert_eq!(w.ok(["profile", "ls"]), "");

    // First mount: b, then a; c is never read.
    let mnt = mount(&w, &id, "m1");
    assert_eq!(std::fs::read(mnt.join("d/b")).unwrap(), b);
    assert_eq!(std::fs::read(mnt.join("a")).unwrap(), a);
    umount(&w, &mnt);
    let p = show(&w, &key);
    assert_eq!(p["ware"], serde_json::json!(id));
    assert_eq!(p["runs"], 1);
    let l = blocks(&p);
    // The root node comes first: nothing is read before it.
    assert_eq!(l[0].0, id);
    let last_b = cb.iter().map(|x| position(&l, x)).max().unwrap();
    let first_a = ca.iter().map(|x| position(&l, x)).min().unwrap();
    assert!(last_b < first_a, "b was read whole before a: {l:?}");
    for x in &cc {
        assert!(!l.iter().any(|(c, _)| c == x), "c was never read");
    }
    assert_eq!(p["chunks"].as_u64().unwrap() as usize, ca.len() + cb.len());

    // Second mount, same daemon: a again (served from the daemon's chunk cache), then c.
    let mnt = mount(&w, &id, "m2");
    assert_eq!(std::fs::read(mnt.join("a")).unwrap(), a);
    assert_eq!(std::fs::read(mnt.join("c")).unwrap(), c);
    umount(&w, &mnt);
    let p = show(&w, &key);
    assert_eq!(p["runs"], 2);
    let l = blocks(&p);
    for x in &ca {
        assert_eq!(l[position(&l, x)].1, 0, "a was read again (from the cache)");
    }
    for x in &cb {
        assert_eq!(
            l[position(&l, x)].1,
            1,
            "b was not read by the second mount"
        );
    }
    // What is new (c) comes after what was read before it (a), and b keeps its place.
    let last_a = ca.iter().map(|x| position(&l, x)).max().unwrap();
    let first_c = cc.iter().map(|x| position(&l, x)).min().unwrap();
    assert!(last_a < first_c, "{l:?}");
    assert!(position(&l, &cb[0]) < position(&l, &ca[0]), "{l:?}");

    // The same profile by its CID; listed once.
    let by_cid = show(&w, p["id"].as_str().unwrap());
    assert_eq!(by_cid["key"], serde_json::json!(key));
    let ls: serde_json::Value = serde_json::from_str(&w.ok(["--json", "profile", "ls"])).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 1);
    assert_eq!(ls[0]["key"], serde_json::json!(key));
    assert!(ls[0].get("blocks").is_none(), "ls lists, show shows");

    // Forgotten: the next show is "not found".
    w.ok(["profile", "rm", &key]);
    assert_eq!(w.ok(["profile", "ls"]), "");
    let out = w.run(["profile", "show", &key]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn profile_commands_name_what_they_cannot_find_or_read() {
    let w = Ware::new();
    let id = w.pack_files("src", &[("f", b"x")]);
    let key = format!("ware:{id}");
    for (args, code, says) in [
        (vec!["profile", "show", key.as_str()], 3, key.as_str()),
        (vec!["profile", "rm", key.as_str()], 3, key.as_str()),
        (vec!["profile", "show", "ware:nonsense"], 2, "ware:nonsense"),
        (vec!["profile", "show", "nonsense"], 2, "nonsense"),
        (vec!["profile", "rm", "cache:x"], 2, "cache:x"),
    ] {
        let out = w.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
