//! Push, pull and the read-through source over a directory warehouse and in-memory stores:
//! the layout round-trips exactly, nothing is uploaded twice, and damaged warehouse bytes are
//! refused, never served or cached.

// The store's error type travels by value through the walk callbacks.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ware_fetchers::read_through::ReadThrough;
use ware_fetchers::transfer::{pull, push};
use ware_fetchers::{FetchOptions, Warehouse, open};
use ware_store::pack::{NoProgress, PackOptions, pack_dir};
use ware_store::profile::ProfileSet;
use ware_store::{BlockSource, MemStore, Reader, WareId};
use ware_test_kit::{is_root, noise, require};

/// A tree with big files (several packs' worth), small ones and a subdirectory.
fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("big1"), noise(1, 20 << 20)).unwrap();
    std::fs::write(dir.join("sub/big2"), noise(2, 5 << 20)).unwrap();
    std::fs::write(dir.join("sub/small"), b"small\n").unwrap();
    std::os::unix::fs::symlink("sub/small", dir.join("link")).unwrap();
}

fn every_file(src: &dyn BlockSource, ware: &WareId) -> Vec<(String, Vec<u8>)> {
    let r = Reader::new(src);
    let mut out = Vec::new();
    for p in ["big1", "sub/big2", "sub/small"] {
        let e = r.resolve(ware, p.as_bytes()).unwrap();
        let mut data = Vec::new();
        r.copy_file(&e, &mut data).unwrap();
        out.push((p.to_string(), data));
    }
    out
}

fn setup() -> (tempfile::TempDir, MemStore, WareId, Arc<dyn Warehouse>) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let store = MemStore::new();
    let id = pack_dir(&store, &src, &PackOptions::default(), &NoProgress)
        .unwrap()
        .id;
    let whdir = tmp.path().join("wh");
    std::fs::create_dir_all(&whdir).unwrap();
    let wh = open(
        &format!("file://{}", whdir.display()),
        &FetchOptions::default(),
    )
    .unwrap();
    (tmp, store, id, wh)
}

#[test]
fn push_then_pull_is_exact_and_a_second_push_uploads_nothing() {
    let (_tmp, store, id, wh) = setup();
    let first = push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    assert!(!first.already_there);
    assert!(first.new_chunks > 0);
    // Twice as many bytes as the tree is big would mean a chunk went up twice.
    assert!(first.uploaded_bytes < 27 << 20, "{first:?}");
    let again = push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    assert!(again.already_there);
    assert_eq!(again.uploaded_bytes, 0);

    let fresh = MemStore::new();
    let report = pull(&*wh, &id, &fresh, &NoProgress).unwrap();
    assert_eq!(report.fetched_chunks, first.new_chunks);
    assert_eq!(fresh.wares(), vec![id]);
    assert_eq!(every_file(&fresh, &id), every_file(&store, &id));
}

#[test]
fn a_ware_sharing_chunks_uploads_only_its_new_ones() {
    let (tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    // The same big files plus one new small file: only that one is new.
    let src2 = tmp.path().join("src2");
    tree(&src2);
    std::fs::write(src2.join("new"), noise(9, 100_000)).unwrap();
    let id2 = pack_dir(&store, &src2, &PackOptions::default(), &NoProgress)
        .unwrap()
        .id;
    let r = push(&store, &id2, &*wh, &ProfileSet::new(id2.0), &NoProgress).unwrap();
    assert!(r.new_chunks <= 3, "{r:?}");
    let fresh = MemStore::new();
    pull(&*wh, &id2, &fresh, &NoProgress).unwrap();
    assert_eq!(every_file(&fresh, &id2), every_file(&store, &id2));
}

#[test]
fn read_through_fetches_lazily_and_caches_verified_bytes() {
    let (_tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    let cache = Arc::new(MemStore::new());
    let rt = ReadThrough::new(cache.clone(), vec![wh.clone()], Duration::from_secs(5));
    // The root alone brings every node of the ware, and no chunk yet.
    Reader::new(&rt).root(&id).unwrap();
    assert_eq!(cache.chunk_count(), 0);
    let e = Reader::new(&rt).resolve(&id, b"sub/small").unwrap();
    let mut small = Vec::new();
    Reader::new(&rt).copy_file(&e, &mut small).unwrap();
    assert_eq!(small, b"small\n");
    assert_eq!(every_file(&rt, &id), every_file(&store, &id));
    // Everything read is now local.
    assert_eq!(every_file(&*cache, &id), every_file(&store, &id));
    // An unknown ID is simply not there.
    let absent: WareId = "bafyr4iekilryssxdbgvpocfyobuwk4fp42b6rr3adj5nd33ko3zwdpatia"
        .parse()
        .unwrap();
    assert!(Reader::new(&rt).root(&absent).unwrap_err().is_not_found());
}

#[test]
fn damaged_packs_are_refused_never_served_nor_cached() {
    let (tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    // Flip one byte in the middle of every pack.
    for e in std::fs::read_dir(tmp.path().join("wh/packs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pack") {
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0x20;
            std::fs::write(&p, b).unwrap();
        }
    }
    let cache = Arc::new(MemStore::new());
    let rt = ReadThrough::new(cache.clone(), vec![wh.clone()], Duration::from_secs(5));
    let r = Reader::new(&rt);
    let mut failed = 0;
    for p in ["big1", "sub/big2"] {
        let e = r.resolve(&id, p.as_bytes()).unwrap();
        let mut out = Vec::new();
        if r.copy_file(&e, &mut out).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "a damaged pack was read without error");
    // Whatever was cached matches its hash: each chunk is either absent or verifies.
    for p in ["big1", "sub/big2"] {
        let e = Reader::new(&*cache).resolve(&id, p.as_bytes()).unwrap();
        for c in Reader::new(&*cache).chunks(&e).unwrap() {
            match cache.chunk(&c.id().unwrap()) {
                Ok(_) => {}
                Err(e) => assert!(e.is_not_found(), "{p}: a bad chunk was cached: {e}"),
            }
        }
    }
    // A pull refuses the damaged pack outright.
    assert!(pull(&*wh, &id, &MemStore::new(), &NoProgress).is_err());
}

#[test]
fn prefetch_brings_chunks_in_the_background() {
    let (_tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    let cache = Arc::new(MemStore::new());
    let rt = ReadThrough::new(cache.clone(), vec![wh.clone()], Duration::from_secs(5));
    let e = Reader::new(&rt).resolve(&id, b"big1").unwrap();
    let ids: Vec<_> = Reader::new(&rt)
        .chunks(&e)
        .unwrap()
        .iter()
        .take(40)
        .map(|c| c.id().unwrap())
        .collect();
    assert_eq!(cache.chunk_count(), 0);
    rt.prefetch(&ids);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ids.iter().any(|c| cache.chunk(c).is_err()) {
        assert!(
            std::time::Instant::now() < deadline,
            "prefetch never brought the chunks"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // They are the right bytes: the file reads back from the cache alone.
    let mut data = Vec::new();
    let first: u64 = Reader::new(&*cache)
        .chunks(&e)
        .unwrap()
        .iter()
        .take(40)
        .map(|c| c.len())
        .sum();
    for c in Reader::new(&*cache).chunks(&e).unwrap().iter().take(40) {
        data.extend(cache.chunk(&c.id().unwrap()).unwrap());
    }
    assert_eq!(data, noise(1, 20 << 20)[..first as usize]);
}

/// A warehouse that fills up: push fails with the error, it does not hang.
#[test]
fn push_to_a_full_warehouse_fails_instead_of_hanging() {
    if !require(is_root(), "needs root to mount a small tmpfs") {
        return;
    }
    let (tmp, store, id, _) = setup();
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(ok.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let wh = open(
        &format!("file://{}", small.display()),
        &FetchOptions::default(),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).map(|_| ()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("push to a full warehouse hung");
    let err = result.expect_err("push to a 2 MiB warehouse succeeded");
    assert!(err.to_string().contains("small"), "{err}");
}

/// A profile's chunks, prefetched: few requests for many chunks (merged ranges), every one
/// verified and in the store afterwards, reads then served locally; the counters say so. A
/// profile of another ware's chunks is refused.
#[test]
fn a_profile_is_prefetched_in_few_requests_and_another_wares_is_refused() {
    use ware_fetchers::read_through::PrefetchOptions;
    let (_tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    // The profile: every chunk of the ware, in walk order.
    let mut blocks = vec![id.0];
    Reader::new(&store)
        .walk_ware(&id, &mut |_, _| Ok(()), &mut |c| {
            let cid = c.id()?.to_cid();
            if !blocks.contains(&cid) {
                blocks.push(cid);
            }
            Ok(())
        })
        .unwrap();
    let cache = Arc::new(MemStore::new());
    let rt = ReadThrough::new(cache.clone(), vec![wh.clone()], Duration::from_secs(5));
    assert!(rt.prepare(&id).unwrap());
    let opts = PrefetchOptions {
        concurrency: 4,
        max_range: 4 << 20,
    };
    let running = rt
        .prefetch_profile(&id, "test", &blocks, opts)
        .expect("the ware's own profile is taken");
    let r = running.wait();
    assert_eq!(r.chunks as usize, blocks.len() - 1, "{r:?}");
    assert_eq!((r.skipped, r.failed, r.cached), (0, 0, 0), "{r:?}");
    assert!(
        r.requests > 0 && (r.requests as usize) < r.chunks as usize / 4,
        "chunks merged into few requests: {r:?}"
    );
    for c in &blocks[1..] {
        let cid = ware_store::ChunkId::from_cid(c).unwrap();
        assert!(cache.chunk(&cid).is_ok(), "{c} is in the store");
    }
    let stats = rt.fetch_stats();
    assert_eq!(stats.prefetch_requests, r.requests);
    assert_eq!(stats.prefetch_bytes, r.bytes);
    // Everything reads now without another request.
    assert_eq!(every_file(&rt, &id), every_file(&store, &id));
    assert_eq!(rt.fetch_stats().demand_requests, 0);
    // A second prefetch finds it all cached.
    let again = rt
        .prefetch_profile(&id, "test", &blocks, opts)
        .unwrap()
        .wait();
    assert_eq!(
        (again.cached, again.requests),
        (again.chunks, 0),
        "{again:?}"
    );

    // Another ware's chunks under this ware's name: refused, nothing fetched.
    let other_store = MemStore::new();
    let tmp2 = tempfile::tempdir().unwrap();
    std::fs::write(tmp2.path().join("x"), noise(41, 3 << 20)).unwrap();
    let other = pack_dir(
        &other_store,
        tmp2.path(),
        &PackOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .id;
    let mut foreign = vec![other.0];
    Reader::new(&other_store)
        .walk_ware(&other, &mut |_, _| Ok(()), &mut |c| {
            foreign.push(c.id()?.to_cid());
            Ok(())
        })
        .unwrap();
    let fresh = ReadThrough::new(
        Arc::new(MemStore::new()),
        vec![wh.clone()],
        Duration::from_secs(5),
    );
    assert!(fresh.prepare(&id).unwrap());
    assert!(
        fresh
            .prefetch_profile(&id, "forged", &foreign, opts)
            .is_none()
    );
    let stats = fresh.fetch_stats();
    assert_eq!((stats.profiles_refused, stats.prefetch_requests), (1, 0));
}

/// A ware pushed before its profile was learned: the push of the profile copies the chunks it
/// lists into packs in its order and names them first, so its prefetch takes a few requests
/// instead of one per scattered chunk; another push changes nothing, and the ware still pulls
/// exactly. A ware pushed with its profile is laid out that way from the start.
#[test]
fn profiles_lay_out_packs_in_access_order() {
    use ware_fetchers::read_through::PrefetchOptions;
    use ware_store::profile::Profile;
    let (_tmp, store, id, wh) = setup();
    push(&store, &id, &*wh, &ProfileSet::new(id.0), &NoProgress).unwrap();
    // Every third chunk of big1, last first: far apart in the walk-ordered packs.
    let e = Reader::new(&store).resolve(&id, b"big1").unwrap();
    let chunks = Reader::new(&store).chunks(&e).unwrap();
    let picked: Vec<cid::Cid> = chunks
        .iter()
        .step_by(3)
        .rev()
        .map(|c| c.id().unwrap().to_cid())
        .collect();
    let mut set = ProfileSet::new(id.0);
    set.profiles
        .insert(format!("ware:{id}"), Profile::first(id.0, &picked));
    // One worker: requests as large as a prefetch makes them (half the profile, 4 MiB at most).
    let opts = PrefetchOptions {
        concurrency: 1,
        max_range: 4 << 20,
    };
    let prefetch = || {
        let rt = ReadThrough::new(
            Arc::new(MemStore::new()),
            vec![wh.clone()],
            Duration::from_secs(5),
        );
        assert!(rt.prepare(&id).unwrap());
        rt.prefetch_profile(&id, "t", &picked, opts).unwrap().wait()
    };
    let before = prefetch();
    assert!(before.requests > 20, "scattered: {before:?}");

    let r = push(&store, &id, &*wh, &set, &NoProgress).unwrap();
    assert!(r.already_there && r.profiles == 1, "{r:?}");
    assert_eq!(r.ordered_chunks as usize, picked.len(), "{r:?}");
    let after = prefetch();
    assert!(after.requests <= 3, "in access order: {after:?}");
    assert_eq!(after.chunks, before.chunks);
    let again = push(&store, &id, &*wh, &set, &NoProgress).unwrap();
    assert_eq!(
        (again.profiles, again.ordered_chunks, again.uploaded_bytes),
        (0, 0, 0),
        "{again:?}"
    );
    let pulled = MemStore::new();
    pull(&*wh, &id, &pulled, &NoProgress).unwrap();
    assert_eq!(every_file(&pulled, &id), every_file(&store, &id));

    // Pushed with its profile into an empty warehouse: in order from the start.
    let tmp2 = tempfile::tempdir().unwrap();
    let wh2 = open(
        &format!("file://{}", tmp2.path().display()),
        &FetchOptions::default(),
    )
    .unwrap();
    let first = push(&store, &id, &*wh2, &set, &NoProgress).unwrap();
    assert_eq!(first.ordered_chunks, 0, "nothing to copy: {first:?}");
    let rt = ReadThrough::new(
        Arc::new(MemStore::new()),
        vec![wh2.clone()],
        Duration::from_secs(5),
    );
    assert!(rt.prepare(&id).unwrap());
    let fresh = rt.prefetch_profile(&id, "t", &picked, opts).unwrap().wait();
    assert!(fresh.requests <= 3, "{fresh:?}");
}
