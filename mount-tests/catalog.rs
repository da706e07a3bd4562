//! Warehouse catalogs through the `ware` binary and real servers: `ware push` records each
//! push (the ware, its size, the names it was pushed under) in the warehouse, and a fresh
//! store lists it with `ware ls URL`, from a directory, through nginx (which cannot list) and
//! from an S3 server (s3s-fs); two stores pushing at once lose no entry; a warehouse with no
//! catalog lists empty with a notice; a damaged catalog is refused naming it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `ware` on `w`'s store with extra environment, stdin closed; the output, whatever it is.
fn run_env(w: &Ware, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let mut c = w.command();
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .stdin(Stdio::null());
    c.output().expect("run ware")
}

/// `ware` that must succeed; its stdout.
fn ok_env(w: &Ware, env: &[(&str, String)], args: &[&str]) -> String {
    stdout_ok(&run_env(w, env, args))
}

/// `ware --json ls URL` in a fresh store.
fn listing(url: &str, env: &[(&str, String)]) -> serde_json::Value {
    let fresh = Ware::new();
    serde_json::from_str(&ok_env(&fresh, env, &["--json", "ls", url])).expect("ls json")
}

fn ids(l: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = l["wares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Three wares pushed from one store, by name, by ID with `--name`, and by ID alone, are
/// listed by a fresh store reading `read_url` with their sizes and names; pushing one again
/// under a new name moves that name and keeps the ware listed once.
fn three_pushes_are_listed(push_url: &str, read_url: &str, env: &[(&str, String)]) {
    let w = Ware::new();
    let a = w.pack_files("a", &[("f", &noise(201, 300_000))]);
    let b = w.pack_files("b", &[("f", &noise(203, 200_000)), ("g", b"x")]);
    let c = w.pack_files("c", &[("f", &noise(205, 100_000))]);
    w.ok(["name", "set", "app", &a]);
    ok_env(&w, env, &["push", "--shared", "app", push_url]);
    ok_env(
        &w,
        env,
        &["push", "--shared", &b, push_url, "--name", "tools"],
    );
    ok_env(&w, env, &["push", "--shared", &c, push_url]);

    let l = listing(read_url, env);
    assert_eq!(l["catalog"], true, "{l}");
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(ids(&l), want, "{l}");
    let of = |id: &str| {
        l["wares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&a)["bytes"], 300_000, "{l}");
    assert_eq!(of(&b)["bytes"], 200_001, "{l}");
    assert_eq!(of(&b)["entries"], 3, "the root and two files: {l}");
    assert_eq!(l["names"]["app"]["id"], a.as_str(), "{l}");
    assert_eq!(l["names"]["tools"]["id"], b.as_str(), "{l}");
    assert_eq!(of(&c)["names"], serde_json::json!([]), "{l}");

    // The plain listing shows the same, one line a ware.
    let fresh = Ware::new();
    let text = ok_env(&fresh, env, &["ls", read_url]);
    assert_eq!(text.lines().count(), 3, "{text}");
    let line_a = text.lines().find(|l| l.starts_with(&a)).unwrap();
    assert!(line_a.ends_with(" app"), "{text}");

    // Inside: `URL/NAME` lists the root of the ware the catalog names, `URL/ID/PATH` a
    // directory of a ware, both in a fresh store (URLs with a query cannot take a path).
    if !read_url.contains('?') {
        let fresh = Ware::new();
        let root = ok_env(&fresh, env, &["ls", &format!("{read_url}/tools")]);
        let names: Vec<&str> = root
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(names, ["f", "g"], "{root}");
        let fresh = Ware::new();
        let one = ok_env(&fresh, env, &["--json", "ls", &format!("{read_url}/{b}/g")]);
        let v: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(v[0]["size"], 1, "{v}");
        let out = run_env(&fresh, env, &["ls", &format!("{read_url}/nosuchname")]);
        assert_eq!(out.status.code(), Some(3), "{out:?}");
    }

    // `app` pushed again for c: it moves there (a later push wins), c listed once.
    ok_env(
        &w,
        env,
        &["push", "--shared", &c, push_url, "--name", "app"],
    );
    let l = listing(read_url, env);
    assert_eq!(ids(&l).len(), 3, "{l}");
    assert_eq!(l["names"]["app"]["id"], c.as_str(), "{l}");
}

#[test]
fn pushes_are_listed_from_a_directory_warehouse() {
    let w = Ware::new();
    let url = format!("file://{}", w.path("wh").display());
    three_pushes_are_listed(&url, &url, &[]);
}

#[test]
fn pushes_are_listed_through_nginx_which_cannot_list() {
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    three_pushes_are_listed(&nginx.push_url(), &nginx.read_url(), &[]);
}

#[test]
fn pushes_are_listed_from_s3s_fs() {
    let Some(s3) = started(servers::S3s::start()) else {
        return;
    };
    let url = s3.url("cat");
    three_pushes_are_listed(&url, &url, &servers::S3s::env());
}

/// Stores pushing into one warehouse at the same time: four stores push one ware each at
/// once, five times over (a fresh warehouse each round), and every ware of every round is in
/// the catalog afterwards; then read through nginx, which cannot list (the pages alone).
#[test]
fn stores_pushing_at_once_lose_no_entry() {
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let stores: Vec<Ware> = (0..4).map(|_| Ware::new()).collect();
    for round in 0..5u64 {
        let url = format!("{}/r{round}", nginx.push_url());
        let pushed: Vec<String> = stores
            .iter()
            .zip(0u64..)
            .map(|(w, k)| {
                let d = noise(301 + 2 * (round * 4 + k), 20_000);
                w.pack_files(&format!("t{round}"), &[("f", &d)])
            })
            .collect();
        let barrier = std::sync::Barrier::new(stores.len());
        std::thread::scope(|sc| {
            for (w, id) in stores.iter().zip(&pushed) {
                let (url, barrier) = (&url, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    w.ok(["push", "--shared", id, url]);
                });
            }
        });
        let l = listing(&format!("{}/r{round}", nginx.read_url()), &[]);
        let mut want = pushed.clone();
        want.sort();
        assert_eq!(ids(&l), want, "round {round}: {l}");
    }
}

/// A warehouse pushed to before catalogs (no catalog objects) lists empty with a notice, and
/// its wares still mount by typed ID elsewhere; a damaged head is refused naming its URL; a
/// URL that is not a warehouse says so.
#[test]
fn no_catalog_lists_empty_and_a_damaged_one_is_refused() {
    let w = Ware::new();
    let id = w.pack_files("a", &[("f", &noise(401, 10_000))]);
    let wh = w.path("wh");
    let url = format!("file://{}", wh.display());
    w.ok(["push", &id, &url]);
    std::fs::remove_dir_all(wh.join("catalog")).unwrap();

    let fresh = Ware::new();
    let out = fresh.loud_command().args(["ls", &url]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no catalog"), "{err}");
    let l = listing(&url, &[]);
    assert_eq!(l["catalog"], false, "{l}");
    assert_eq!(ids(&l), Vec::<String>::new());

    std::fs::create_dir_all(wh.join("catalog")).unwrap();
    std::fs::write(wh.join("catalog/head"), b"\xa1garbage").unwrap();
    let out = fresh.run(["ls", &url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("catalog/head"), "{err}");
    // A push over a damaged catalog still puts the ware there, and says the catalog failed.
    let other = w.pack_files("b", &[("f", &noise(403, 10_000))]);
    let out = w
        .loud_command()
        .args(["push", &other, &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in the warehouse's catalog"),
        "{out:?}"
    );

    let empty = w.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = fresh.run(["ls", &format!("file://{}", empty.display())]);
    assert_eq!(out.status.code(), Some(3), "not found: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no warefs-warehouse marker"),
        "{out:?}"
    );
}

/// A catalog lost from a directory warehouse is rebuilt from its manifests; one whose head
/// was damaged is rebuilt from its pages and pushes, names kept.
#[test]
fn a_lost_or_damaged_catalog_is_rebuilt() {
    let w = Ware::new();
    let a = w.pack_files("a", &[("f", &noise(501, 10_000))]);
    let b = w.pack_files("b", &[("f", &noise(503, 20_000))]);
    let wh = w.path("wh");
    let url = format!("file://{}", wh.display());
    w.ok(["push", &a, &url, "--name", "first"]);
    w.ok(["push", &b, &url]);
    let mut want = vec![a.clone(), b.clone()];
    want.sort();

    std::fs::write(wh.join("catalog/head"), b"damaged").unwrap();
    assert!(!w.run(["ls", &url]).status.success());
    w.ok(["catalog", "rebuild", &url]);
    let l = listing(&url, &[]);
    assert_eq!(ids(&l), want, "{l}");
    assert_eq!(l["names"]["first"]["id"], a.as_str(), "names kept: {l}");

    std::fs::remove_dir_all(wh.join("catalog")).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&w.ok(["--json", "catalog", "rebuild", &url])).unwrap();
    assert_eq!(r["from_manifests"], 2, "{r}");
    let l = listing(&url, &[]);
    assert_eq!(ids(&l), want, "{l}");
    let sized = l["wares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == b.as_str())
        .unwrap();
    assert_eq!(sized["bytes"], 20_000, "size read from the manifest: {l}");

    // Over HTTP there is no listing to rebuild from: a clear error.
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let out = w.run(["catalog", "rebuild", &nginx.read_url()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a listing"),
        "{out:?}"
    );
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// `ware mount URL MNT`: the warehouse as a tree, in a fresh store: MNT lists every ware of
/// its catalog and `names/`, `MNT/names/<n>/` reads the exact tree fetching only what is read,
/// and a push from another store shows once the catalog's TTL has passed. `ware mount --all`
/// with the warehouse lists its wares beside the store's own.
#[test]
fn a_warehouse_mounts_as_a_tree_of_its_wares_and_names() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let data = noise(601, 700_000);
    let a = w.pack_files("a", &[("lib/data.bin", &data)]);
    let b = w.pack_files("b", &[("f", &noise(603, 50_000))]);
    w.ok(["push", "--shared", &a, &nginx.push_url(), "--name", "app"]);
    w.ok(["push", "--shared", &b, &nginx.push_url()]);

    let fresh = Ware::new();
    let mnt = fresh.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    fresh.ok(["mount", "--catalog-ttl", "1", &nginx.read_url(), m]);
    let mut want = vec![a.clone(), b.clone(), "names".to_string()];
    want.sort();
    assert_eq!(entries(&mnt), want);
    assert_eq!(entries(&mnt.join("names")), ["app"]);
    // `ls -l` of the top: every ware a directory, and no manifest fetched for it.
    for id in [&a, &b] {
        let md = std::fs::symlink_metadata(mnt.join(id)).unwrap();
        assert!(md.is_dir(), "{id}: {md:?}");
    }
    let ls = Command::new("ls").arg("-la").arg(&mnt).output().unwrap();
    assert!(ls.status.success(), "{ls:?}");
    let manifests = |nginx: &servers::Nginx| -> Vec<String> {
        nginx
            .requested()
            .into_iter()
            .filter(|u| u.starts_with("/wares/") || u.starts_with("/packs/"))
            .collect()
    };
    assert_eq!(
        manifests(&nginx),
        Vec::<String>::new(),
        "listing the top fetched"
    );
    assert_eq!(
        std::fs::read_link(mnt.join("names/app")).unwrap(),
        std::path::PathBuf::from(format!("../{a}"))
    );
    assert_eq!(
        std::fs::read(mnt.join("names/app/lib/data.bin")).unwrap(),
        data
    );
    let (got, f) = fresh.first_mount_fetched();
    assert!(
        got >= data.len() as u64 && got < data.len() as u64 + 300_000,
        "only the file read was fetched: {f}"
    );
    let fetched = manifests(&nginx);
    assert!(
        fetched.iter().all(|u| !u.contains(&b)) && fetched.contains(&format!("/wares/{a}")),
        "only the ware looked into: {fetched:?}"
    );

    // Another store pushes: listed once the TTL has passed.
    let other = Ware::new();
    let c = other.pack_files("c", &[("f", &noise(605, 10_000))]);
    other.ok(["push", "--shared", &c, &nginx.push_url(), "--name", "late"]);
    assert!(
        wait_for(Duration::from_secs(20), || entries(&mnt).contains(&c)
            && entries(&mnt.join("names")).contains(&"late".to_string())),
        "the new push never showed: {:?}",
        entries(&mnt)
    );
    fresh.ok(["umount", m]);

    // --all with the warehouse: the store's own ware beside the warehouse's.
    let own = fresh.pack_files("own", &[("f", b"mine")]);
    fresh.ok(["--warehouse", &nginx.read_url(), "mount", "--all", m]);
    let listed = entries(&mnt);
    for id in [&a, &b, &c, &own] {
        assert!(listed.contains(id), "{id} not in {listed:?}");
    }
    fresh.ok(["umount", m]);
}

/// A warehouse whose catalog head is garbage still mounts: the top lists nothing but
/// `names/`, the daemon's log says why, and a ware typed by ID reads as ever.
#[test]
fn a_garbage_catalog_is_refused_and_typed_ids_still_mount() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let data = noise(701, 30_000);
    let id = w.pack_files("a", &[("f", &data)]);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    servers::write_readable(nginx.root(), "catalog/head", b"\x00\xffnot a catalog");
    let fresh = Ware::new();
    let mnt = fresh.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    fresh.ok(["mount", &nginx.read_url(), m]);
    assert_eq!(entries(&mnt), ["names"]);
    assert_eq!(std::fs::read(mnt.join(&id).join("f")).unwrap(), data);
    fresh.ok(["umount", m]);
    let log = std::fs::read_to_string(fresh.store().join("daemon.log")).unwrap();
    assert!(log.contains("catalog/head"), "{log}");
}

/// An IPFS node's pins are its catalog: a push pins the ware's root (recursively; a name
/// given is reported as not kept), `ware ls URL` lists the pinned wares and nothing else the
/// node pins (its init files), `ware mount URL MNT` lists them without a fetch and reads them,
/// and the node's garbage collection, which takes an unpinned block, keeps every block of them.
#[test]
fn an_ipfs_nodes_pins_are_its_catalog() {
    let Some(node) = started(servers::JsIpfs::start()) else {
        return;
    };
    let url = format!("ipfs+http://{}", node.api);
    let w = Ware::new();
    let data = noise(801, 900_000);
    let a = w.pack_files("a", &[("lib/data.bin", &data), ("small", b"tiny\n")]);
    let b = w.pack_files("b", &[("f", &noise(803, 40_000))]);
    let out = w
        .loud_command()
        .args(["push", &a, &url, "--name", "app"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keeps no names") && err.contains("app"),
        "{err}"
    );
    let pushed: serde_json::Value =
        serde_json::from_str(&w.ok(["--json", "push", &b, &url])).expect("push json");
    assert_eq!(pushed["cataloged"], true, "{pushed}");

    let l = listing(&url, &[]);
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ids(&l), want, "{l}");
    assert_eq!(l["pins"], true);
    assert!(l["wares"][0]["bytes"].is_null(), "{l}");

    // Blocks nobody pinned go in the node's garbage collection; the pushed wares' stay.
    let f = w.path("loose");
    std::fs::write(&f, b"a block nobody pinned").unwrap();
    let loose = node
        .cli(&["block", "put", f.to_str().unwrap()])
        .expect("block put");
    let loose = ware_fetchers::Cid::try_from(loose.as_str()).expect("a CID");
    let held = |node: &servers::JsIpfs| -> Vec<Vec<u8>> {
        let local = node.cli(&["refs", "local"]).expect("refs local");
        local
            .lines()
            .filter_map(|l| ware_fetchers::Cid::try_from(l.trim()).ok())
            .map(|c| c.hash().to_bytes())
            .collect()
    };
    assert!(held(&node).contains(&loose.hash().to_bytes()));
    node.cli(&["repo", "gc"]).expect("repo gc");
    assert!(
        !held(&node).contains(&loose.hash().to_bytes()),
        "gc kept an unpinned block"
    );

    let fresh = Ware::new();
    let mnt = fresh.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    fresh.ok(["mount", &url, m]);
    let mut top = want.clone();
    top.push("names".to_string());
    top.sort();
    assert_eq!(entries(&mnt), top);
    for id in [&a, &b] {
        assert!(std::fs::metadata(mnt.join(id)).unwrap().is_dir());
    }
    assert_eq!(
        std::fs::read(mnt.join(&a).join("lib/data.bin")).unwrap(),
        data
    );
    assert_eq!(
        std::fs::read(mnt.join(&a).join("small")).unwrap(),
        b"tiny\n"
    );
    assert_eq!(entries(&mnt.join(&b)), ["f"]);
    fresh.ok(["umount", m]);
}
