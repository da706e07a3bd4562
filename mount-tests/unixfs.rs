//! IPFS UnixFS content mounted by its CID, end to end through the `ware` binary: a tree added
//! to a real js-ipfs node (CIDv1 with raw leaves and CIDv0, a 3 MiB file of many blocks, a
//! HAMT-sharded directory, a symlink node, UnixFS 1.5 modes and mtimes) and one packed by
//! `ipfs-car` is read lazily from the node's RPC API and from nginx as a trustless gateway,
//! compared entry for entry with the source; the root CID agrees with a third-party
//! implementation (`aleph-cid`, Kubo's rules); a block altered on the gateway is EIO naming its
//! CID while other files read; what was read is served from the store once the gateway is gone.

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use ware_fetchers::{BlockHash, Cid, DAG_PB, Warehouse};

/// Entries in `many/`, with 250-byte names: js-ipfs 0.66 shards a directory of more entries
/// than `--shard-split-threshold` (500 here; 1000 by default), Kubo (and aleph-cid) one whose
/// links would take more than 256 KiB (1000 × (250 + 36) bytes); so both make the same HAMT.
const MANY: usize = 1000;

/// A tree both js-ipfs and aleph-cid can add as it is: no symlink (js-ipfs follows them,
/// aleph-cid leaves them out) and no empty directory (aleph-cid leaves those out).
fn source(w: &Ware) -> PathBuf {
    let src = w.path("src");
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::create_dir_all(src.join("many")).unwrap();
    std::fs::write(src.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("big"), noise(7, 3 << 20)).unwrap();
    std::fs::write(src.join("small.txt"), b"small\n").unwrap();
    for i in 0..MANY {
        let name = format!("{i:04}-{}", "x".repeat(245));
        std::fs::write(src.join("many").join(name), format!("entry {i}\n")).unwrap();
    }
    // Modes as UnixFS shows them when it carries none, whatever the umask.
    set_modes(&src);
    src
}

fn set_modes(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            set_modes(&p);
        } else if m.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The canonical text of a CID: CIDv1 in base32, CIDv0 as `Qm…` (js-ipfs prints CIDv1 in
/// base58).
fn canonical(s: &str) -> Cid {
    s.trim().parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// The root CID aleph-cid computes for a folder, if it is installed (a Python venv named by
/// `WARE_ALEPH_PYTHON`, the build cache's `aleph-venv`, or the system's python3).
fn aleph_cid(dir: &Path, version: u32) -> Option<String> {
    let mut pythons: Vec<PathBuf> = std::env::var_os("WARE_ALEPH_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(h) = std::env::var_os("HOME") {
        pythons.push(PathBuf::from(h).join(".cache/warefs-build/aleph-venv/bin/python"));
    }
    pythons.push("python3".into());
    for py in pythons {
        let out = Command::new(&py)
            .args([
                "-c",
                "import sys, aleph_cid; print(aleph_cid.hash_folder(sys.argv[1], \
                 cid_version=int(sys.argv[2]), follow_symlinks=False))",
            ])
            .arg(dir)
            .arg(version.to_string())
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    None
}

fn ipfs_car() -> Option<PathBuf> {
    let mut c: Vec<PathBuf> = std::env::var_os("WARE_IPFS_CAR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(h) = std::env::var_os("HOME") {
        c.push(
            PathBuf::from(h).join(".cache/warefs-build/ipfs-car-3.1.0/node_modules/.bin/ipfs-car"),
        );
    }
    c.into_iter().find(|p| p.is_file())
}

/// `ware mount CID MNT --warehouse URL` into `w`'s store; the mountpoint.
fn mount(w: &Ware, url: &str, cid: &Cid, name: &str) -> PathBuf {
    let mnt = w.path(name);
    std::fs::create_dir_all(&mnt).unwrap();
    w.ok([
        "--read-deadline",
        "5",
        "--warehouse",
        url,
        "mount",
        &cid.to_string(),
        mnt.to_str().unwrap(),
    ]);
    mnt
}

fn umount(w: &Ware, mnt: &Path) {
    w.ok(["umount", mnt.to_str().unwrap()]);
}

/// Every block of the DAG under `root`, written where the nginx trustless gateway serves it.
fn export_to_gateway(
    node: &servers::JsIpfs,
    rpc: &dyn Warehouse,
    root: &Cid,
    nginx: &servers::Nginx,
) {
    let refs = node
        .cli(&["refs", "-r", "--unique", &root.to_string()])
        .unwrap();
    let mut cids = vec![*root];
    cids.extend(refs.lines().map(canonical));
    for cid in cids {
        let block = rpc.get_block(&cid).unwrap();
        nginx.seed(&format!("ipfs/{cid}"), &block);
    }
}

#[test]
fn unixfs_content_from_js_ipfs_and_a_trustless_gateway() {
    if !can_mount() {
        return;
    }
    let Some(node) = started(servers::JsIpfs::start()) else {
        return;
    };
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let rpc_url = format!("ipfs+http://{}", node.api);
    let rpc = ware_fetchers::open(&rpc_url, &Default::default()).unwrap();
    let w = Ware::new();
    let src = source(&w);

    // CIDv1, raw leaves: js-ipfs and aleph-cid (Kubo's rules) agree on the root.
    let added = node
        .cli(&[
            "add",
            "-r",
            "-Q",
            "--cid-version",
            "1",
            "--shard-split-threshold",
            "500",
            src.to_str().unwrap(),
        ])
        .unwrap();
    let v1 = canonical(&added);
    if require(
        aleph_cid(&src, 1).is_some(),
        "aleph-cid is not installed (pip install aleph-cid)",
    ) {
        assert_eq!(
            aleph_cid(&src, 1).unwrap(),
            v1.to_string(),
            "js-ipfs and aleph-cid disagree"
        );
    }

    // A symlink node (which `add` cannot make: it follows symlinks), linked in by hand (named
    // to sort last: js-ipfs appends the link, and refuses links out of name order).
    let target = b"a/b/c/deep.txt";
    let data = ware_fetchers::unixfs::decode::encode::unixfs(
        ware_fetchers::unixfs::decode::DataType::Symlink,
        target,
        None,
        &[],
        None,
        None,
        None,
    );
    let sym = rpc
        .put_block(
            DAG_PB,
            BlockHash::Sha2_256,
            ware_fetchers::unixfs::decode::encode::pb(&[], &data).into(),
        )
        .unwrap();
    let root = canonical(
        &node
            .cli(&[
                "object",
                "patch",
                "add-link",
                &v1.to_string(),
                "zlink",
                &sym.to_string(),
            ])
            .unwrap(),
    );
    std::os::unix::fs::symlink("a/b/c/deep.txt", src.join("zlink")).unwrap();
    let expected = snapshot(&src, false, true, &[]);

    // Lazily from the node's RPC API, into a fresh store: the same tree, entry for entry.
    let a = Ware::new();
    let mnt = mount(&a, &rpc_url, &root, "mnt");
    assert_eq!(std::fs::read(mnt.join("small.txt")).unwrap(), b"small\n");
    let s = a.stats();
    assert_eq!(s["chunks"], 0, "{s}");
    assert_same(&expected, &snapshot(&mnt, false, true, &[]));
    assert_eq!(
        std::fs::read_link(mnt.join("zlink")).unwrap(),
        Path::new("a/b/c/deep.txt")
    );
    assert_eq!(
        std::fs::metadata(mnt.join("big")).unwrap().mode() & 0o7777,
        0o644
    );
    assert_eq!(
        std::fs::metadata(mnt.join("a")).unwrap().mode() & 0o7777,
        0o755
    );
    assert_eq!(std::fs::read_dir(mnt.join("many")).unwrap().count(), MANY);
    umount(&a, &mnt);

    // `--all` shows it as MNT/<cid>/ on lookup.
    let all = a.path("all");
    std::fs::create_dir_all(&all).unwrap();
    a.ok([
        "--warehouse",
        &rpc_url,
        "mount",
        "--all",
        all.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(all.join(root.to_string()).join("a/b/c/deep.txt")).unwrap(),
        b"deep\n"
    );
    umount(&a, &all);

    // CIDv0: dag-pb leaves (js-ipfs follows the symlink, so it is left out here).
    std::fs::remove_file(src.join("zlink")).unwrap();
    let v0 = canonical(
        &node
            .cli(&[
                "add",
                "-r",
                "-Q",
                "--shard-split-threshold",
                "500",
                src.to_str().unwrap(),
            ])
            .unwrap(),
    );
    assert_eq!(v0.version(), cid::Version::V0);
    if require(aleph_cid(&src, 0).is_some(), "aleph-cid is not installed") {
        assert_eq!(
            aleph_cid(&src, 0).unwrap(),
            v0.to_string(),
            "js-ipfs and aleph-cid disagree"
        );
    }
    let mnt0 = mount(&a, &rpc_url, &v0, "mnt0");
    assert_same(
        &snapshot(&src, false, true, &[]),
        &snapshot(&mnt0, false, true, &[]),
    );
    umount(&a, &mnt0);

    // UnixFS 1.5 modes and mtimes, kept by js-ipfs (CIDv1: with CIDv0 js-ipfs 0.66 wraps the
    // encoded leaf block as the file's data, and its own `cat` shows those bytes).
    std::fs::set_permissions(
        src.join("small.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let mtime = std::fs::metadata(src.join("small.txt")).unwrap().mtime();
    let kept = canonical(
        node.cli(&[
            "add",
            "-r",
            "-Q",
            "--cid-version",
            "1",
            "--preserve-mode",
            "--preserve-mtime",
            src.join("a").to_str().unwrap(),
            src.join("small.txt").to_str().unwrap(),
            "--wrap-with-directory",
        ])
        .unwrap()
        .lines()
        .last()
        .unwrap(),
    );
    let mnt_kept = mount(&a, &rpc_url, &kept, "mntkept");
    let m = std::fs::metadata(mnt_kept.join("small.txt")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o600, mtime));
    assert_eq!(
        std::fs::read(mnt_kept.join("small.txt")).unwrap(),
        b"small\n"
    );
    assert_eq!(
        std::fs::read(mnt_kept.join("a/b/c/deep.txt")).unwrap(),
        b"deep\n"
    );
    umount(&a, &mnt_kept);
    std::fs::set_permissions(
        src.join("small.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // ipfs-car's packing (1 MiB chunks), imported into the node as a CAR.
    if let Some(car_bin) = ipfs_car() {
        let carsrc = w.path("carsrc");
        std::fs::create_dir_all(carsrc.join("x/y")).unwrap();
        std::fs::write(carsrc.join("big"), noise(8, (3 << 20) + 5)).unwrap();
        std::fs::write(carsrc.join("x/y/f"), b"f\n").unwrap();
        set_modes(&carsrc);
        let car = w.path("tree.car");
        let out = Command::new(car_bin)
            .args([
                "pack",
                carsrc.to_str().unwrap(),
                "--no-wrap",
                "--output",
                car.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let car_root = canonical(String::from_utf8_lossy(&out.stdout).lines().last().unwrap());
        rpc.put_car(std::fs::read(&car).unwrap().into()).unwrap();
        let mnt_car = mount(&a, &rpc_url, &car_root, "mntcar");
        assert_same(
            &snapshot(&carsrc, false, true, &[]),
            &snapshot(&mnt_car, false, true, &[]),
        );
        umount(&a, &mnt_car);
    } else {
        require(false, "ipfs-car 3.1.0 is not installed (npm)");
    }

    // Through nginx as a trustless gateway, into a fresh store.
    export_to_gateway(&node, &*rpc, &root, &nginx);
    let gw_url = format!("ipfs+gateway+http://{}", nginx.addr);
    let b = Ware::new();
    let mnt_b = mount(&b, &gw_url, &root, "mnt");
    assert_same(&expected, &snapshot(&mnt_b, false, true, &[]));
    umount(&b, &mnt_b);

    // A leaf of `big` altered on the gateway: EIO naming it, in a store that lacks it; the
    // other files still read.
    let big_refs = node.cli(&["refs", &format!("/ipfs/{root}/big")]).unwrap();
    let leaf = canonical(big_refs.lines().nth(1).unwrap());
    nginx.seed(
        &format!("ipfs/{leaf}"),
        b"not the block you are looking for",
    );
    let c = Ware::new();
    let mnt_c = mount(&c, &gw_url, &root, "mnt");
    let err = std::fs::read(mnt_c.join("big")).expect_err("a corrupt block was served");
    assert_eq!(err.raw_os_error(), Some(5), "{err}");
    assert_eq!(std::fs::read(mnt_c.join("small.txt")).unwrap(), b"small\n");
    let log = std::fs::read_to_string(c.store().join("daemon.log")).unwrap();
    assert!(
        log.contains(&leaf.to_string()),
        "the log does not name {leaf}:\n{log}"
    );
    umount(&c, &mnt_c);

    // The gateway gone: what the store holds is served, verified again on the way out.
    drop(nginx);
    let mnt_b = mount(&b, &gw_url, &root, "mnt");
    assert_same(&expected, &snapshot(&mnt_b, false, true, &[]));
    umount(&b, &mnt_b);
    b.ok(["fsck"]);
}
