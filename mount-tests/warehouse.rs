//! Warehouses end to end through the `ware` binary, each kind against its real server on
//! 127.0.0.1 (a directory, nginx, s3s-fs, a js-ipfs node): push, pull into a fresh store, and a
//! lazy mount into a fresh store compared byte for byte and entry for entry with the source;
//! only what is read is fetched; a dead warehouse gives EIO within the read deadline while what
//! is cached keeps working; a warehouse serving wrong bytes is never believed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A tree with a file of several packs' worth, small files, a symlink, a hardlink and an
/// empty directory.
fn source(w: &Ware) -> PathBuf {
    let src = w.path("src");
    std::fs::create_dir_all(src.join("sub/empty")).unwrap();
    std::fs::write(src.join("big"), noise(1, 24 << 20)).unwrap();
    std::fs::write(src.join("sub/mid"), noise(2, 3 << 20)).unwrap();
    std::fs::write(src.join("sub/small"), b"small\n").unwrap();
    std::fs::hard_link(src.join("sub/small"), src.join("small-link")).unwrap();
    std::os::unix::fs::symlink("sub/small", src.join("sym")).unwrap();
    src
}

/// `ware` on the store of `w` (each `Ware` stops its daemon when dropped, also when a test
/// fails), with extra environment.
fn ware_at(w: &Ware, env: &[(&str, String)]) -> Command {
    let mut c = w.command();
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stats(w: &Ware) -> serde_json::Value {
    let mut c = ware_at(w, &[]);
    c.args(["--json", "stats"]);
    serde_json::from_str(&ok(c)).unwrap()
}

/// Push to `push_url`, then in fresh stores: pull from `read_url` (object warehouses), and
/// mount lazily from it.
fn round_trip(push_url: &str, read_url: &str, env: &[(&str, String)], objects: bool) {
    let w = Ware::new();
    let src = source(&w);
    let id = w.pack(&src);
    let mut c = ware_at(&w, env);
    // A directory a web server serves: shared (0755/0644); a private one nginx cannot read.
    c.args(["push", "--shared", &id, push_url]);
    ok(c);
    if objects {
        // Pushing again uploads nothing.
        let mut c = ware_at(&w, env);
        c.args(["--json", "push", &id, push_url]);
        let again: serde_json::Value = serde_json::from_str(&ok(c)).unwrap();
        assert_eq!(again["uploaded_bytes"], 0, "{again}");

        let pulled = Ware::new();
        let mut c = ware_at(&pulled, env);
        c.args(["pull", &id, read_url]);
        ok(c);
        let out = pulled.path("copy");
        let mut c = ware_at(&pulled, env);
        c.arg("unpack").arg(&id).arg(&out);
        ok(c);
        assert_same(
            &snapshot(&src, false, true, &[]),
            &snapshot(&out, false, true, &[]),
        );
        assert_eq!(stats(&pulled)["wares"], 1);
        let mut c = ware_at(&pulled, env);
        c.arg("fsck");
        ok(c);
    }

    // `ls`, `stat` and `cat` read through the warehouse too, fetching only what they show.
    let peek = Ware::new();
    let mut c = ware_at(&peek, env);
    c.args(["ls", &id]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "without a warehouse: not found");
    let mut c = ware_at(&peek, env);
    c.args(["--warehouse", read_url, "ls", &format!("{id}/sub")]);
    let listing = ok(c);
    assert!(
        ["empty", "mid", "small"]
            .iter()
            .all(|n| listing.contains(n)),
        "{listing}"
    );
    let mut c = ware_at(&peek, env);
    c.args([
        "--warehouse",
        read_url,
        "--json",
        "stat",
        &format!("{id}/big"),
    ]);
    let st: serde_json::Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(st["size"], 24 << 20, "{st}");
    let mut c = ware_at(&peek, env);
    c.args(["--warehouse", read_url, "cat", &format!("{id}/sub/mid")]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, noise(2, 3 << 20));
    let s = stats(&peek);
    assert!(
        s["chunk_bytes"].as_u64().unwrap() < 8 << 20,
        "ls, stat and a 3 MiB cat fetched {} bytes",
        s["chunk_bytes"]
    );

    if !can_mount() {
        return;
    }
    let lazy = Ware::new();
    let mnt = lazy.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut c = ware_at(&lazy, env);
    c.args(["--warehouse", read_url, "mount", &id]).arg(&mnt);
    ok(c);
    // Mounted, with its whole tree listed, and not a chunk fetched yet.
    assert_eq!(std::fs::read(mnt.join("sub/small")).unwrap(), b"small\n");
    let s = stats(&lazy);
    assert_eq!(s["partial_wares"], 1, "{s}");
    assert_eq!(s["chunks"], 0, "chunks fetched before any was read: {s}");
    // Reading one file fetches that file (and a bounded window), not the big one.
    assert_eq!(
        std::fs::read(mnt.join("sub/mid")).unwrap(),
        noise(2, 3 << 20)
    );
    let s = stats(&lazy);
    assert!(
        s["chunk_bytes"].as_u64().unwrap() < 8 << 20,
        "reading a 3 MiB file fetched {} bytes",
        s["chunk_bytes"]
    );
    // Everything, entry for entry.
    assert_same(
        &snapshot(&src, false, true, &[]),
        &snapshot(&mnt, false, true, &[]),
    );
    let mut c = ware_at(&lazy, env);
    c.arg("umount").arg(&mnt);
    ok(c);
    // The store is clean, the ware still partial (its pieces are all there now, though).
    let mut c = ware_at(&lazy, env);
    c.arg("fsck");
    ok(c);
}

#[test]
fn directory_warehouse() {
    let w = Ware::new();
    let dir = w.path("warehouse");
    let url = format!("file://{}", dir.display());
    round_trip(&url, &url, &[], true);
}

#[test]
fn http_warehouse_served_by_nginx() {
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let push = nginx.push_url();
    let read = nginx.read_url();
    round_trip(&push, &read, &[], true);
}

#[test]
fn s3_warehouse_served_by_s3s_fs() {
    let Some(s3) = started(servers::S3s::start()) else {
        return;
    };
    let url = s3.url("some/prefix");
    let env = servers::S3s::env();
    round_trip(&url, &url, &env, true);
}

#[test]
fn ipfs_node_warehouse() {
    let Some(node) = started(servers::JsIpfs::start()) else {
        return;
    };
    let url = format!("ipfs+http://{}", node.api);
    // An IPFS node holds blocks, not whole-ware manifests: push, then mount lazily block by
    // block (pull is for object warehouses).
    round_trip(&url, &url, &[], false);
}

/// A dead warehouse: reads of what is not cached fail with EIO within the deadline, what is
/// cached keeps working; a warehouse that serves wrong bytes is refused and the next one used.
#[test]
fn dead_and_lying_warehouses() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let src = source(&w);
    let id = w.pack(&src);
    let push = nginx.push_url();
    w.ok(["push", "--shared", &id, &push]);

    // A proxy that flips bytes in every answer, listed before the honest server.
    let big = noise(1, 24 << 20);
    let lying = servers::Proxy::start(
        nginx.addr,
        servers::Fault::Replace(big[1000..1008].to_vec(), b"XXXXXXXX".to_vec()),
    );
    let lazy = Ware::new();
    let mnt = lazy.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mut c = ware_at(&lazy, &[]);
    c.args([
        "--read-deadline",
        "4",
        "--warehouse",
        &format!("http://{}", lying.addr),
        "--warehouse",
        &nginx.read_url(),
        "mount",
        &id,
    ])
    .arg(&mnt);
    ok(c);
    assert_eq!(
        std::fs::read(mnt.join("big")).unwrap(),
        big,
        "wrong bytes served"
    );
    let log = std::fs::read_to_string(lazy.store().join("daemon.log")).unwrap();
    assert!(
        log.contains(&lying.addr.to_string()),
        "the daemon log does not name the lying warehouse:\n{log}"
    );

    // Now the only warehouse dies: the cached file still reads, the rest fails fast.
    drop(nginx);
    drop(lying);
    assert_eq!(std::fs::read(mnt.join("big")).unwrap(), big);
    let started = Instant::now();
    let err = std::fs::read(mnt.join("sub/mid")).expect_err("read from a dead warehouse");
    assert_eq!(err.raw_os_error(), Some(5), "expected EIO, got {err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a read of a dead warehouse took {:?}",
        started.elapsed()
    );
}

/// The whole-store mount shows a ware only a warehouse holds: listed from its catalog,
/// and read on lookup of its ID.
#[test]
fn the_whole_store_mount_shows_wares_only_a_warehouse_holds() {
    if !can_mount() {
        return;
    }
    let w = Ware::new();
    let src = source(&w);
    let id = w.pack(&src);
    let url = format!("file://{}", w.path("warehouse").display());
    w.ok(["push", &id, &url]);
    let fresh = Ware::new();
    let all = fresh.path("all");
    std::fs::create_dir_all(&all).unwrap();
    let mut c = ware_at(&fresh, &[]);
    c.args(["--warehouse", &url, "mount", "--all"]).arg(&all);
    ok(c);
    // Listed (the warehouse's catalog names it, though the store does not hold it),
    // and there on lookup.
    let listed: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        listed.iter().any(|n| n.to_string_lossy() == id),
        "{listed:?}"
    );
    assert_eq!(
        std::fs::read(all.join(&id).join("sub/mid")).unwrap(),
        noise(2, 3 << 20)
    );
    // A new daemon, the ware now partly cached: what is not cached yet still comes.
    let mut c = ware_at(&fresh, &[]);
    c.args(["daemon", "stop"]);
    ok(c);
    let mut c = ware_at(&fresh, &[]);
    c.args(["--warehouse", &url, "mount", "--all"]).arg(&all);
    ok(c);
    assert_eq!(
        std::fs::read(all.join(&id).join("big")).unwrap(),
        noise(1, 24 << 20)
    );
    // An ID no warehouse holds is simply not there.
    assert!(
        !all.join("bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia")
            .exists()
    );
}

/// HTTPS: a server that offers HTTP/2 (by ALPN) is spoken to in HTTP/2, one connection
/// multiplexing the ranges of a lazy mount; its certificate is checked (trusted here through
/// `SSL_CERT_FILE`, refused without it, naming the cause).
#[test]
fn https_warehouse_speaks_http2_where_the_server_offers_it() {
    let Some(nginx) = started(servers::Nginx::start_tls()) else {
        return;
    };
    let read = format!("https://{}", nginx.addr);
    let trust = [("SSL_CERT_FILE", nginx.cert().display().to_string())];
    round_trip(&nginx.push_url(), &read, &trust, true);
    let log = nginx.protocols();
    assert!(!log.is_empty(), "nginx logged no request");
    assert!(
        log.iter().all(|l| l.starts_with("HTTP/2.0 ")),
        "requests not in HTTP/2: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains(" 206 ")),
        "no range request: {log:?}"
    );

    // Without the certificate trusted, nothing is fetched, and the error says why.
    let w = Ware::new();
    let id = w.pack_files("t", &[("f", b"x")]);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    let fresh = Ware::new();
    let out = fresh.run(["--warehouse", &read, "pull", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}
