//! Access profiles learned from real mounts, through the `ware` binary: a mount records the
//! order in which a ware's nodes and chunks are first read, and keeps it as the ware's profile
//! when it ends; a later mount merges into it (reads served from the daemon's caches count);
//! `ware run` learns one profile per input (`run:<formula>:<path>`) and feeds the input wares'
//! own; `ware profile ls|show|rm` with their errors and exit codes.
//!
//! Needs root and /dev/fuse: without them each test prints why it skips (and fails under CI).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

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

/// `ware run` of a job on the small Debian rootfs with `data` at /data; returns the formula ID.
fn run_job(w: &Ware, root: &str, data: &str, script: &str, name: &str) -> String {
    let f = w.path(name);
    let formula = serde_json::json!({
        "inputs": {"/": root, "/data": data},
        "action": {"argv": ["/bin/sh", "-c", script]},
    });
    std::fs::write(&f, serde_json::to_vec(&formula).unwrap()).unwrap();
    let rec = w.path(&format!("{name}.record"));
    let out = w
        .command()
        .args([
            "run",
            "--record",
            rec.to_str().unwrap(),
            f.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ware");
    stdout_ok(&out);
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    assert_eq!(rec["exit_code"], 0, "{rec}");
    rec["formula"].as_str().expect("formula ID").to_string()
}

fn cids(p: &serde_json::Value) -> Vec<String> {
    blocks(p).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn a_run_learns_a_profile_per_input_and_feeds_the_wares_own() {
    if !can_mount() {
        return;
    }
    let Some(rootfs) = rootfs("small") else {
        return;
    };
    let w = Ware::new();
    let root = w.pack(&rootfs);
    let (a, b) = (noise(7, 600_000), noise(9, 400_000));
    let data = w.pack_files("data", &[("a", &a), ("b", &b)]);
    // A ware in the store that no job reads: the run's mount shows it, nothing learns it.
    let other = w.pack_files("other", &[("x", &noise(11, 1000))]);
    let (ca, cb) = (chunk_cids(&a), chunk_cids(&b));

    let f1 = run_job(
        &w,
        &root,
        &data,
        "cat /data/b > /dev/null; ls /data",
        "f1.json",
    );
    let ls: serde_json::Value = serde_json::from_str(&w.ok(["--json", "profile", "ls"])).unwrap();
    let mut keys: Vec<String> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut want = vec![
        format!("run:{f1}:/"),
        format!("run:{f1}:/data"),
        format!("ware:{root}"),
        format!("ware:{data}"),
    ];
    want.sort();
    assert_eq!(
        keys, want,
        "one profile per input and per input ware, none for {other}"
    );

    // The /data input's profile: its root node first, b's chunks, none of a's.
    let p = show(&w, &format!("run:{f1}:/data"));
    assert_eq!(p["ware"], serde_json::json!(data));
    let l = cids(&p);
    assert_eq!(l[0], data);
    for x in &cb {
        assert!(l.contains(x), "b was read: {l:?}");
    }
    for x in &ca {
        assert!(!l.contains(x), "a was never read: {l:?}");
    }
    // The rootfs input's profile holds what the shell and ls read, and is the ware's own.
    let p = show(&w, &format!("run:{f1}:/"));
    assert_eq!(p["ware"], serde_json::json!(root));
    assert!(p["chunks"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(cids(&p), cids(&show(&w, &format!("ware:{root}"))));

    // Another job on the same data: its own run profile, merged into the ware's.
    let f2 = run_job(&w, &root, &data, "cat /data/a > /dev/null", "f2.json");
    assert_ne!(f1, f2);
    let l2 = cids(&show(&w, &format!("run:{f2}:/data")));
    for x in &ca {
        assert!(l2.contains(x), "a was read: {l2:?}");
    }
    for x in &cb {
        assert!(!l2.contains(x), "b was not read by the second job: {l2:?}");
    }
    let own = show(&w, &format!("ware:{data}"));
    assert_eq!(own["runs"], 2);
    let own = blocks(&own);
    for x in &cb {
        assert_eq!(own[position(&own, x)].1, 1, "the second run missed b");
    }
    for x in &ca {
        assert_eq!(own[position(&own, x)].1, 0, "the second run read a");
    }
    // The first job's profile is untouched by the second.
    assert_eq!(show(&w, &format!("run:{f1}:/data"))["runs"], 1);
}

/// `ware` on `w`'s store with extra environment, stdin closed; asserts success, returns stdout.
fn ok_env(w: &Ware, env: &[(&str, String)], args: &[&str]) -> String {
    let mut c = w.command();
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .stdin(Stdio::null());
    stdout_ok(&c.output().expect("run ware"))
}

fn mount_env(w: &Ware, env: &[(&str, String)], id: &str, dir: &str) -> std::path::PathBuf {
    let mnt = w.path(dir);
    std::fs::create_dir_all(&mnt).unwrap();
    ok_env(w, env, &["mount", id, mnt.to_str().unwrap()]);
    mnt
}

fn push_json(w: &Ware, env: &[(&str, String)], id: &str, url: &str) -> serde_json::Value {
    let out = ok_env(w, env, &["--json", "push", "--shared", id, url]);
    serde_json::from_str(&out).expect("push json")
}

/// Profiles pushed to `push_url` reach fresh stores reading `read_url`: by a lazy mount (at
/// mount time, with the ware's metadata) and by a pull; a push of a ware already there still
/// uploads a newer profile, and a push with nothing new uploads nothing.
fn profiles_travel(push_url: &str, read_url: &str, env: &[(&str, String)]) {
    let w = Ware::new();
    let (a, b) = (noise(13, 900_000), noise(15, 500_000));
    let id = w.pack_files("src", &[("a", &a), ("b", &b)]);
    let key = format!("ware:{id}");
    // The daemon pushes: it starts (with the first mount) in the environment that holds an
    // S3 warehouse's keys.
    let mnt = mount_env(&w, env, &id, "m1");
    assert_eq!(std::fs::read(mnt.join("a")).unwrap(), a);
    umount(&w, &mnt);

    let first = push_json(&w, env, &id, push_url);
    assert_eq!(first["already_there"], false, "{first}");
    assert_eq!(first["profiles"], 1, "{first}");
    // Learned more since: the warehouse has the ware, and still gets the newer profile.
    let mnt = mount_env(&w, env, &id, "m2");
    assert_eq!(std::fs::read(mnt.join("b")).unwrap(), b);
    umount(&w, &mnt);
    let again = push_json(&w, env, &id, push_url);
    assert_eq!(again["already_there"], true, "{again}");
    assert_eq!(again["profiles"], 1, "{again}");
    assert!(again["uploaded_bytes"].as_u64().unwrap() > 0, "{again}");
    let idle = push_json(&w, env, &id, push_url);
    assert_eq!(
        (idle["profiles"].as_u64(), idle["uploaded_bytes"].as_u64()),
        (Some(0), Some(0))
    );
    let learned = show(&w, &key);
    assert_eq!(learned["runs"], 2);

    // A fresh store mounting the ware lazily has its profile as soon as the mount is up.
    let lazy = Ware::new();
    let mnt = lazy.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    ok_env(
        &lazy,
        env,
        &["--warehouse", read_url, "mount", &id, mnt.to_str().unwrap()],
    );
    let got = show(&lazy, &key);
    assert_eq!(got["id"], learned["id"], "the same profile, byte for byte");
    assert_eq!(std::fs::read(mnt.join("b")).unwrap(), b);
    umount(&lazy, &mnt);

    // So has a store that pulls it.
    let pulled = Ware::new();
    let r: serde_json::Value =
        serde_json::from_str(&ok_env(&pulled, env, &["--json", "pull", &id, read_url])).unwrap();
    assert_eq!(r["profiles"], 1, "{r}");
    assert_eq!(show(&pulled, &key)["id"], learned["id"]);
}

/// A check of a warehouse (push URL, read URL, environment of the `ware` commands).
type Check = fn(&str, &str, &[(&str, String)]);

/// Runs `check` on a directory warehouse served by nginx (skipped without mounts or nginx).
fn over_nginx(check: Check) {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    check(&nginx.push_url(), &nginx.read_url(), &[]);
}

/// Runs `check` on an S3 warehouse under `prefix` in s3s-fs (skipped without mounts or it).
fn over_s3s_fs(prefix: &str, check: Check) {
    if !can_mount() {
        return;
    }
    let Some(s3) = started(servers::S3s::start()) else {
        return;
    };
    let url = s3.url(prefix);
    check(&url, &url, &servers::S3s::env());
}

#[test]
fn profiles_travel_through_nginx() {
    over_nginx(profiles_travel);
}

#[test]
fn profiles_travel_through_s3s_fs() {
    over_s3s_fs("p", profiles_travel);
}

/// A warehouse whose profiles are damaged, or are another ware's: refused with a line in the
/// daemon's log, and the mount works as without them (nothing kept, every byte right).
#[test]
fn damaged_or_foreign_profiles_in_a_warehouse_are_refused_and_the_mount_still_works() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let a = noise(17, 300_000);
    let id = w.pack_files("src", &[("a", &a)]);
    let other = w.pack_files("other", &[("o", &noise(19, 300_000))]);
    let push = nginx.push_url();
    let read = nginx.read_url();
    for ware in [&id, &other] {
        let mnt = mount(&w, ware, &format!("m-{ware}"));
        std::fs::read_dir(&mnt).unwrap().for_each(drop);
        umount(&w, &mnt);
        w.ok(["push", "--shared", ware, &push]);
    }
    let set = nginx.root().join(format!("profiles/{id}"));
    let honest = std::fs::read(&set).expect("the pushed profiles");
    let foreign = std::fs::read(nginx.root().join(format!("profiles/{other}"))).unwrap();
    for (what, bytes) in [
        ("bad bytes", b"\xa3not a profile set".to_vec()),
        ("cut short", honest[..honest.len() - 7].to_vec()),
        ("another ware's", foreign),
    ] {
        servers::write_readable(nginx.root(), &format!("profiles/{id}"), &bytes);
        let lazy = Ware::new();
        let mnt = lazy.path("lazy");
        std::fs::create_dir_all(&mnt).unwrap();
        lazy.ok(["--warehouse", &read, "mount", &id, mnt.to_str().unwrap()]);
        assert_eq!(std::fs::read(mnt.join("a")).unwrap(), a, "{what}");
        assert_eq!(lazy.ok(["profile", "ls"]), "", "{what}: nothing kept");
        umount(&lazy, &mnt);
        let log = std::fs::read_to_string(lazy.store().join("daemon.log")).unwrap();
        assert!(
            log.contains(&format!("profiles/{id}")) && log.contains("going without"),
            "{what}: the daemon log says why:\n{log}"
        );
    }
}

/// A run learns its inputs' profiles in one store and pushes the inputs (with them) to a
/// warehouse; a fresh store running the same formula from the warehouse fetches by the
/// profiles (the run record's counters say so) and the job sees the right bytes.
fn a_fresh_store_prefetches_by_the_pushed_profile(
    push_url: &str,
    read_url: &str,
    env: &[(&str, String)],
) {
    let Some(rootfs) = rootfs("small") else {
        return;
    };
    let w = Ware::new();
    let root = w.pack(&rootfs);
    let b = noise(21, 3 << 20);
    let data = w.pack_files("data", &[("b", &b), ("c", &noise(23, 1 << 20))]);
    let script = "cat /data/b | md5sum > /out/sum; ls /usr/bin > /dev/null";
    let formula = serde_json::json!({
        "inputs": {"/": root, "/data": data},
        "action": {"argv": ["/bin/sh", "-c", script]},
        "outputs": {"/out": {}},
    });
    let f = w.path("f.json");
    std::fs::write(&f, serde_json::to_vec(&formula).unwrap()).unwrap();
    let rec_a = w.path("a.record");
    ok_env(
        &w,
        env,
        &[
            "run",
            "--record",
            rec_a.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
    );
    let rec_a: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec_a).unwrap()).unwrap();
    assert!(rec_a.get("fetched").is_none(), "all local: {rec_a}");
    for id in [&root, &data] {
        let r = push_json(&w, env, id, push_url);
        assert!(r["profiles"].as_u64().unwrap() >= 1, "{r}");
    }

    let fresh = Ware::new();
    let rec_b = fresh.path("b.record");
    ok_env(
        &fresh,
        env,
        &[
            "--warehouse",
            read_url,
            "run",
            "--record",
            rec_b.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
    );
    let rec_b: serde_json::Value = serde_json::from_slice(&std::fs::read(&rec_b).unwrap()).unwrap();
    assert_eq!(rec_b["exit_code"], 0, "{rec_b}");
    assert_eq!(
        rec_b["outputs"], rec_a["outputs"],
        "the same sum: the same bytes"
    );
    let fetched = &rec_b["fetched"];
    assert!(
        fetched["prefetch_requests"].as_u64().unwrap() > 0,
        "{rec_b}"
    );
    assert!(
        fetched["prefetch_bytes"].as_u64().unwrap() > 0
            && fetched["profile_chunks"].as_u64().unwrap() >= chunk_cids(&b).len() as u64,
        "{rec_b}"
    );
    assert_eq!(fetched["profiles_refused"], 0, "{rec_b}");
    let log = std::fs::read_to_string(fresh.store().join("daemon.log")).unwrap();
    assert!(
        log.contains(&format!(
            "profile run:{}:/data: prefetching",
            rec_a["formula"].as_str().unwrap()
        )),
        "the daemon log says which profile it used:\n{log}"
    );
    // Every prefetched byte was verified: the store checks whole.
    ok_env(&fresh, env, &["fsck"]);
}

#[test]
fn a_fresh_store_prefetches_by_the_profile_pushed_to_nginx() {
    over_nginx(a_fresh_store_prefetches_by_the_pushed_profile);
}

#[test]
fn a_fresh_store_prefetches_by_the_profile_pushed_to_s3s_fs() {
    over_s3s_fs("q", a_fresh_store_prefetches_by_the_pushed_profile);
}

/// A profile whose blocks are another ware's (well formed, so it is taken): the prefetch
/// refuses it with a line in the log, and the mount reads on demand, right.
#[test]
fn a_profile_naming_another_wares_chunks_is_not_prefetched() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let a = noise(25, 2 << 20);
    let id = w.pack_files("src", &[("a", &a)]);
    let other = w.pack_files("other", &[("o", &noise(27, 2 << 20))]);
    let mnt = mount(&w, &other, "m");
    std::fs::read(mnt.join("o")).unwrap();
    umount(&w, &mnt);
    let push = nginx.push_url();
    w.ok(["push", "--shared", &id, &push]);
    w.ok(["push", "--shared", &other, &push]);
    // The set of `id`, with the profile of `other` relabelled as `id`'s.
    let theirs = std::fs::read(nginx.root().join(format!("profiles/{other}"))).unwrap();
    let (oid, iid): (ware_store::Cid, ware_store::Cid) =
        (other.parse().unwrap(), id.parse().unwrap());
    let theirs = ware_store::profile::ProfileSet::decode(&oid, "theirs", &theirs).unwrap();
    let mut p = theirs.profiles[&format!("ware:{other}")].clone();
    p.ware = iid;
    let mut forged = ware_store::profile::ProfileSet::new(iid);
    forged.profiles.insert(format!("ware:{id}"), p);
    servers::write_readable(nginx.root(), &format!("profiles/{id}"), &forged.encode());

    // Without the guesses a mount with no usable profile makes (tested apart), every byte read
    // is fetched on demand.
    let lazy = Ware::new();
    lazy.ok(["config", "set", "prefetch.opened_bytes", "0"]);
    lazy.ok(["config", "set", "prefetch.siblings_bytes", "0"]);
    let mnt = lazy.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    let read = nginx.read_url();
    lazy.ok(["--warehouse", &read, "mount", &id, mnt.to_str().unwrap()]);
    assert_eq!(std::fs::read(mnt.join("a")).unwrap(), a);
    let status: serde_json::Value =
        serde_json::from_str(&lazy.ok(["--json", "daemon", "status"])).unwrap();
    let fetched = &status["mounts"][0]["fetched"];
    assert_eq!(fetched["profiles_refused"], 1, "{status}");
    // `ware stats` says the same, per mount.
    let stats: serde_json::Value = serde_json::from_str(&lazy.ok(["--json", "stats"])).unwrap();
    assert_eq!(stats["mounts"][0]["fetched"], *fetched, "{stats}");
    assert_eq!(fetched["prefetch_requests"], 0, "{status}");
    assert!(fetched["demand_requests"].as_u64().unwrap() > 0, "{status}");
    umount(&lazy, &mnt);
    let log = std::fs::read_to_string(lazy.store().join("daemon.log")).unwrap();
    assert!(
        log.contains(&format!("profile ware:{id}")) && log.contains("are not the ware's; not used"),
        "{log}"
    );
}

/// A ware of `n` files of `size` noise bytes (seeds from `seed`), whose first `read` files a
/// mount has read (so its profile lists them), pushed with that profile to the directory nginx
/// serves; its files and ID.
fn learned_and_pushed(
    nginx: &servers::Nginx,
    n: u64,
    size: usize,
    seed: u64,
    read: usize,
) -> (Vec<(String, Vec<u8>)>, String) {
    let w = Ware::new();
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|k| (format!("f{k}"), noise(seed + 2 * k, size)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(f, d)| (f.as_str(), &d[..])).collect();
    let id = w.pack_files("src", &refs);
    let mnt = mount(&w, &id, "m");
    for (f, d) in files.iter().take(read) {
        assert_eq!(&std::fs::read(mnt.join(f)).unwrap(), d);
    }
    umount(&w, &mnt);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    (files, id)
}

/// The names of the threads of process `pid`.
fn threads(pid: u64) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

/// A warehouse that answers whole objects but never a byte range: the profile's prefetch
/// hangs, yet a read fails with EIO within its deadline (never later), what is local keeps
/// working, unmounting does not wait for the prefetch, and its threads end by the deadline.
#[test]
fn a_stalled_prefetch_delays_no_read_past_its_deadline_and_ends_with_the_mount() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let (files, id) = learned_and_pushed(&nginx, 4, 1 << 20, 31, 4);
    let proxy = servers::Proxy::start(nginx.addr, servers::Fault::StallRanges);
    let lazy = Ware::new();
    let mnt = lazy.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    let url = format!("http://{}", proxy.addr);
    let deadline = Duration::from_secs(3);
    lazy.ok([
        "--read-deadline",
        "3",
        "--warehouse",
        &url,
        "mount",
        &id,
        mnt.to_str().unwrap(),
    ]);
    let status: serde_json::Value =
        serde_json::from_str(&lazy.ok(["--json", "daemon", "status"])).unwrap();
    let pid = status["daemon"]["pid"].as_u64().unwrap();
    assert!(
        status["mounts"][0]["fetched"]["profile_chunks"]
            .as_u64()
            .unwrap()
            > 0,
        "the profile came with the metadata: {status}"
    );
    assert!(threads(pid).iter().any(|t| t.starts_with("ware-profile")));

    // The directory tree is local; the bytes are behind the stalled prefetch.
    let names: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), files.len());
    let t = Instant::now();
    let err = std::fs::read(mnt.join("f2")).expect_err("no byte can come");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::IO.raw_os_error()),
        "{err}"
    );
    assert!(
        t.elapsed() < deadline + Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );

    // Unmounting does not wait for the stalled requests; their threads end by the deadline.
    umount(&lazy, &mnt);
    let t = Instant::now();
    while threads(pid).iter().any(|t| t.starts_with("ware-profile")) {
        assert!(
            t.elapsed() < deadline + Duration::from_secs(10),
            "prefetch threads outlive the mount: {:?}",
            threads(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing half-written: the store checks whole.
    lazy.ok(["fsck"]);
}

fn fetched(w: &Ware) -> serde_json::Value {
    let s: serde_json::Value = serde_json::from_str(&w.ok(["--json", "daemon", "status"])).unwrap();
    s["mounts"][0]["fetched"].clone()
}

/// `ware mount --fill`: after the profile, the rest of the ware comes in the background, so
/// the store holds it whole (it unpacks with no warehouse); `--fill-rate` caps it, and an
/// unmount stops it (nothing more arrives, nothing half-written).
#[test]
fn a_fill_brings_the_rest_of_the_ware_at_its_rate_and_stops_at_unmount() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let (files, id) = learned_and_pushed(&nginx, 3, 3 << 20, 51, 1);
    let url = nginx.read_url();

    // Uncapped: the whole ware arrives without a read.
    let full = Ware::new();
    let mnt = full.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    full.ok([
        "--warehouse",
        &url,
        "mount",
        "--fill",
        &id,
        mnt.to_str().unwrap(),
    ]);
    let t = Instant::now();
    let whole = 9u64 << 20;
    while fetched(&full)["fill_bytes"].as_u64().unwrap()
        + fetched(&full)["prefetch_bytes"].as_u64().unwrap()
        < whole * 9 / 10
    {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", fetched(&full));
        std::thread::sleep(Duration::from_millis(100));
    }
    let f = fetched(&full);
    assert_eq!(f["demand_requests"], 0, "nothing was read: {f}");
    umount(&full, &mnt);
    let out = full.path("out");
    full.ok(["unpack", &id, out.to_str().unwrap()]);
    for (n, d) in &files {
        assert_eq!(&std::fs::read(out.join(n)).unwrap(), d, "{n}");
    }

    // Capped at 256 KiB/s: one request, then a wait far longer than this test; the unmount
    // stops it and the store does not hold the ware whole.
    let slow = Ware::new();
    let mnt = slow.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    slow.ok([
        "--warehouse",
        &url,
        "mount",
        "--fill",
        "--fill-rate",
        "256K",
        &id,
        mnt.to_str().unwrap(),
    ]);
    let status: serde_json::Value =
        serde_json::from_str(&slow.ok(["--json", "daemon", "status"])).unwrap();
    let pid = status["daemon"]["pid"].as_u64().unwrap();
    umount(&slow, &mnt);
    let t = Instant::now();
    while threads(pid).iter().any(|t| t.starts_with("ware-fill")) {
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", threads(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = slow.path("out");
    let r = slow.run(["unpack", &id, out.to_str().unwrap()]);
    assert!(
        !r.status.success(),
        "the capped fill cannot have brought 9 MiB"
    );
    slow.ok(["fsck"]);

    // Bad rates and settings are usage errors naming what is wrong.
    for (args, says) in [
        (
            vec!["mount", "--fill", "--fill-rate", "0", &id, "/nonexistent"],
            "above 0",
        ),
        (
            vec!["mount", "--fill", "--fill-rate", "-5", &id, "/nonexistent"],
            "above 0",
        ),
        (
            vec!["mount", "--fill", "--fill-rate", "10X", &id, "/nonexistent"],
            "K, M or G",
        ),
        (
            vec!["mount", "--fill-rate", "5M", &id, "/nonexistent"],
            "--fill",
        ),
        (
            vec!["config", "set", "prefetch.concurrency", "0"],
            "out of range",
        ),
        (
            vec!["config", "set", "prefetch.concurrency", "-3"],
            "out of range",
        ),
        (
            vec!["config", "set", "prefetch.max_range", "1e15"],
            "out of range",
        ),
        (vec!["config", "set", "fill.rate", "0"], "out of range"),
    ] {
        let out = slow.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// A fresh store's lazy mount of `id` from `url`, with the store's `settings` set first.
fn lazy_mount(url: &str, id: &str, settings: &[(&str, &str)]) -> (Ware, std::path::PathBuf) {
    let lazy = Ware::new();
    for (k, v) in settings {
        lazy.ok(["config", "set", k, v]);
    }
    let mnt = lazy.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    lazy.ok(["--warehouse", url, "mount", id, mnt.to_str().unwrap()]);
    (lazy, mnt)
}

fn counter(f: &serde_json::Value, key: &str) -> u64 {
    f[key].as_u64().unwrap_or_else(|| panic!("no {key} in {f}"))
}

/// Bytes fetched from the warehouse for reads: on demand, read ahead and by profile prefetch.
fn fetched_bytes(f: &serde_json::Value) -> u64 {
    counter(f, "demand_bytes") + counter(f, "readahead_bytes") + counter(f, "prefetch_bytes")
}

/// Waits (at most 30 s) until `w`'s mount has fetched at least `bytes` for reads; else fails
/// with `what` and the counters.
fn wait_fetched(w: &Ware, bytes: u64, what: &str) {
    let t = Instant::now();
    while fetched_bytes(&fetched(w)) < bytes {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: {}",
            fetched(w)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first `n` bytes of the file at `path` (one open, one read of exactly that much).
fn read_head(path: &Path, n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open(path)
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf
}

/// With no profile, opening one file of a directory brings the small files beside it in the
/// background (one range request for files back to back in a pack), so reading them then asks
/// the warehouse for nothing; a large file beside them and other directories are not fetched
/// ahead; `prefetch.siblings_bytes = 0` turns it off.
#[test]
fn with_no_profile_the_first_open_in_a_directory_brings_its_small_files() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let small: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|k| (format!("pkg/m{k:02}.py"), noise(61 + 2 * k, 40_000)))
        .collect();
    let big = noise(91, 3 << 20);
    let elsewhere = noise(93, 40_000);
    let mut files: Vec<(&str, &[u8])> = small.iter().map(|(f, d)| (f.as_str(), &d[..])).collect();
    files.push(("pkg/zbig.so", &big));
    files.push(("lib/other.py", &elsewhere));
    let id = w.pack_files("src", &files);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    let url = nginx.read_url();
    let all_small: u64 = small.iter().map(|(_, d)| d.len() as u64).sum();

    let (lazy, mnt) = lazy_mount(&url, &id, &[]);
    assert_eq!(std::fs::read(mnt.join(&small[0].0)).unwrap(), small[0].1);
    // The rest of the directory's small files arrive without being read (bounded wait): the
    // read's own window of 256 KiB takes a few along, the read-ahead the rest.
    wait_fetched(&lazy, all_small, "the small files beside it never came");
    let before = fetched(&lazy);
    assert!(
        fetched_bytes(&before) < all_small + (1 << 20),
        "more than the small files came: {before}"
    );
    assert!(counter(&before, "readahead_bytes") > 0, "{before}");
    assert!(counter(&before, "readahead_requests") <= 3, "{before}");
    for (f, d) in &small[1..] {
        assert_eq!(&std::fs::read(mnt.join(f)).unwrap(), d, "{f}");
    }
    let after = fetched(&lazy);
    assert_eq!(
        counter(&after, "demand_requests"),
        counter(&before, "demand_requests"),
        "reading the small files asked the warehouse again: {before} then {after}"
    );
    // Neither the large file beside them nor another directory came ahead: opening and
    // reading them brings them.
    assert_eq!(std::fs::read(mnt.join("lib/other.py")).unwrap(), elsewhere);
    assert_eq!(std::fs::read(mnt.join("pkg/zbig.so")).unwrap(), big);
    let last = fetched(&lazy);
    assert!(
        fetched_bytes(&last) >= fetched_bytes(&after) + (big.len() + elsewhere.len()) as u64,
        "{after} then {last}"
    );
    umount(&lazy, &mnt);
    lazy.ok(["fsck"]);

    // Turned off: the files are fetched when read (a read's window of 256 KiB takes a few
    // neighbours along; the directory's 480 KB take more than one).
    let (off, mnt) = lazy_mount(&url, &id, &[("prefetch.siblings_bytes", "0")]);
    for (f, d) in &small {
        assert_eq!(&std::fs::read(mnt.join(f)).unwrap(), d, "{f}");
    }
    let f = fetched(&off);
    assert_eq!(counter(&f, "readahead_bytes"), 0, "{f}");
    assert!(counter(&f, "demand_requests") >= 2, "{f}");
    umount(&off, &mnt);
}

/// With no profile, opening a file of a directory that the first open did not bring (the
/// program went past the guess) brings the small files after it: with a budget of two files a
/// hint, opening the seventh brings the eighth and ninth, and reading them asks for nothing.
#[test]
fn with_no_profile_opening_a_file_past_the_guess_brings_the_next_ones() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let small: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|k| (format!("pkg/m{k:02}.pyc"), noise(103 + 2 * k, 200_000)))
        .collect();
    let files: Vec<(&str, &[u8])> = small.iter().map(|(f, d)| (f.as_str(), &d[..])).collect();
    let id = w.pack_files("src", &files);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    let (lazy, mnt) = lazy_mount(
        &nginx.read_url(),
        &id,
        &[("prefetch.siblings_bytes", "400000")],
    );
    let read = |k: usize| assert_eq!(std::fs::read(mnt.join(&small[k].0)).unwrap(), small[k].1);
    read(0);
    read(6);
    wait_fetched(&lazy, 6 * 200_000, "the files after the seventh never came");
    let before = fetched(&lazy);
    read(7);
    read(8);
    let after = fetched(&lazy);
    assert_eq!(
        counter(&after, "demand_requests"),
        counter(&before, "demand_requests"),
        "reading the files after the seventh asked the warehouse again: {before} then {after}"
    );
    // Not the whole directory: the fourth file (between the two guesses) was not hinted, so
    // reading it asks the warehouse.
    read(3);
    let last = fetched(&lazy);
    assert!(
        counter(&last, "demand_requests") + counter(&last, "readahead_requests")
            > counter(&after, "demand_requests") + counter(&after, "readahead_requests"),
        "the fourth file had come without a read: {after} then {last}"
    );
    umount(&lazy, &mnt);
}

/// With no profile, a file opened for the first time comes whole in the background if it is
/// not larger than `prefetch.opened_bytes`: read in one place (as a loader touches a library),
/// the rest of it is then there, and reading it all asks the warehouse for nothing more; a
/// file larger than the setting is fetched only where it is read.
#[test]
fn with_no_profile_an_opened_file_comes_whole_unless_it_is_large() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let lib = noise(97, 3 << 20);
    // Packed first: what a capped fill's first request (at most 4 MiB) brings.
    let first = noise(101, 5 << 20);
    let id = w.pack_files("src", &[("a/first", &first), ("lib/libx.so", &lib)]);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);
    let url = nginx.read_url();
    let peek = |mnt: &Path| assert_eq!(read_head(&mnt.join("lib/libx.so"), 4096), lib[..4096]);

    let (lazy, mnt) = lazy_mount(&url, &id, &[]);
    peek(&mnt);
    wait_fetched(&lazy, lib.len() as u64, "the opened file never came whole");
    let before = fetched(&lazy);
    assert!(counter(&before, "readahead_requests") >= 2, "{before}");
    assert_eq!(std::fs::read(mnt.join("lib/libx.so")).unwrap(), lib);
    let after = fetched(&lazy);
    assert_eq!(
        counter(&after, "demand_requests"),
        counter(&before, "demand_requests"),
        "{before} then {after}"
    );
    umount(&lazy, &mnt);
    lazy.ok(["fsck"]);

    // Larger than the setting: only what is read comes (its window), the rest when read.
    let (small, mnt) = lazy_mount(&url, &id, &[("prefetch.opened_bytes", "1048576")]);
    peek(&mnt);
    let f = fetched(&small);
    assert!(fetched_bytes(&f) < lib.len() as u64 / 2, "{f}");
    umount(&small, &mnt);

    // A slow background fill is no profile: the opened file still comes whole, ahead of it
    // (at 1 KiB/s the fill, after its first request, waits longer than this test).
    let filling = Ware::new();
    let mnt = filling.path("lazy");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    filling.ok([
        "--warehouse",
        &url,
        "mount",
        "--fill",
        "--fill-rate",
        "1K",
        &id,
        m,
    ]);
    peek(&mnt);
    wait_fetched(
        &filling,
        lib.len() as u64,
        "with a fill, the opened file never came whole",
    );
    let f = fetched(&filling);
    assert!(counter(&f, "readahead_requests") >= 2, "{f}");
    umount(&filling, &mnt);
}

/// With a profile, a job that reads what the profile says reads nothing more ahead: a
/// sequential reader of the start of a file does not pull the 4 MiB after where the profile
/// (and the job) stops; reading on past the profile turns reading ahead back on.
#[test]
fn a_job_inside_its_profile_reads_nothing_ahead_and_one_leaving_it_does() {
    if !can_mount() {
        return;
    }
    let Some(nginx) = started(servers::Nginx::start()) else {
        return;
    };
    let w = Ware::new();
    let data = noise(99, 16 << 20);
    let id = w.pack_files("src", &[("big", &data)]);
    let head = |mnt: &Path| assert_eq!(read_head(&mnt.join("big"), 2 << 20), data[..2 << 20]);
    let mnt = mount(&w, &id, "m");
    head(&mnt);
    umount(&w, &mnt);
    w.ok(["push", "--shared", &id, &nginx.push_url()]);

    let (lazy, mnt) = lazy_mount(&nginx.read_url(), &id, &[]);
    head(&mnt);
    let f = fetched(&lazy);
    assert!(counter(&f, "profile_chunks") > 0, "{f}");
    assert_eq!(counter(&f, "readahead_requests"), 0, "{f}");
    assert!(
        fetched_bytes(&f) < 5 << 20,
        "read ahead past the profile: {f}"
    );
    // Reading on, past the profile: the rest comes, read ahead again.
    assert_eq!(std::fs::read(mnt.join("big")).unwrap(), data);
    let f = fetched(&lazy);
    assert!(counter(&f, "readahead_requests") > 0, "{f}");
    umount(&lazy, &mnt);
}
