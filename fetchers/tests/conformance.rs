//! One conformance suite that every kind of warehouse runs against its real server (restic's
//! `internal/backend/test` in spirit): [`CHECKS`] is one list of named checks, and each kind —
//! a directory, nginx, s3s-fs, a js-ipfs node through its RPC API, and nginx serving the node's
//! blocks as a trustless gateway — runs every check that applies to what it offers (objects or
//! blocks, writes, listing, a server to put a fault proxy in front of). A kind's test reports
//! each check by name, and all of them run even when one fails.
//!
//! After the suite, kind-specific tests: a server without Range support (python's
//! http.server), TLS, S3 credentials and endpoints, CIDv0, a directory's special files. Faults
//! come from a TCP proxy between the warehouse and the server. Deadlines are 1–2 s, so a hang
//! fails fast.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ware_fetchers::{
    BLAKE3, BlockHash, Bytes, Cid, DAG_CBOR, Error, FetchOptions, Kind, RAW, S3Settings,
    S3Warehouse, Warehouse, block_cid, open,
};
use ware_test_kit::servers::{self, Fault, JsIpfs, Nginx, Proxy, PyHttp, S3s};
use ware_test_kit::{noise, started};

/// Short bounds: faults are detected within a second or two.
fn opts() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(1000),
        low_speed_timeout: Duration::from_millis(500),
        retries: 2,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        deadline: Duration::from_millis(1500),
        ipfs_block_timeout: Duration::from_millis(300),
        shared: false,
    }
}

/// Settings for the test s3s-fs server at `endpoint` (itself or a proxy in front of it).
fn s3_settings(endpoint: SocketAddr) -> S3Settings {
    S3Settings {
        access_key_id: Some(servers::S3_ACCESS_KEY.into()),
        secret_access_key: Some(servers::S3_SECRET_KEY.into()),
        region: Some("us-east-1".into()),
        endpoint: Some(format!("http://{endpoint}")),
        ..Default::default()
    }
}

/// The size of the main test object: several TCP segments, so truncation cuts into the body.
const SIZE: usize = 64 << 10;
/// The key of the main test object.
const KEY: &str = "suite/objects/data";

/// Puts an object where a server will serve it.
type Seed = Box<dyn Fn(&str, &[u8])>;
/// Puts a block (codec, hash, bytes) where a server will serve it; its CID.
type SeedBlock = Box<dyn Fn(u64, BlockHash, &[u8]) -> Cid>;
/// Opens the warehouse under test through a proxy at the given address.
type Through = Box<dyn Fn(SocketAddr) -> Arc<dyn Warehouse>>;

/// A warehouse under test, with what the suite needs to know about its server.
struct Target {
    name: &'static str,
    wh: Arc<dyn Warehouse>,
    /// Puts an object where the server will serve it (read-only kinds are seeded behind the
    /// server's back; writable ones through the warehouse). Kinds with objects only.
    seed: Option<Seed>,
    /// The same for blocks. Kinds with blocks only.
    seed_block: Option<SeedBlock>,
    /// The server's address and how to open the same warehouse through a proxy at an address,
    /// for the fault checks; `None` for a local directory.
    via: Option<(SocketAddr, Through)>,
}

/// A target with its fixtures in place: the main object (kinds with objects) or the blocks
/// (kinds with blocks), seeded once before the checks run.
struct Suite<'a> {
    t: &'a Target,
    wh: &'a dyn Warehouse,
    name: &'a str,
    /// The main object's bytes, at [`KEY`].
    data: Vec<u8>,
    /// `hello\n` (raw, sha2-256, a known CID), a BLAKE3 raw chunk with a marker the proxy can
    /// flip, a BLAKE3 DAG-CBOR node, a sha2-256 raw block with the marker.
    blocks: Vec<(Cid, Vec<u8>)>,
}

/// What a check needs of a kind.
#[derive(Clone, Copy)]
enum Needs {
    Objects,
    WritableObjects,
    ReadOnly,
    Listing,
    NoListing,
    ObjectsViaProxy,
    Blocks,
    WritableBlocks,
    BlocksViaProxy,
}

impl Needs {
    fn met_by(self, t: &Target) -> bool {
        let kind = t.wh.kind();
        match self {
            Needs::Objects => kind.has_objects(),
            Needs::WritableObjects => kind.has_objects() && kind.is_writable(),
            Needs::ReadOnly => !kind.is_writable(),
            Needs::Listing => kind.can_list(),
            Needs::NoListing => !kind.can_list(),
            Needs::ObjectsViaProxy => kind.has_objects() && t.via.is_some(),
            Needs::Blocks => kind.has_blocks(),
            Needs::WritableBlocks => kind.has_blocks() && kind.is_writable(),
            Needs::BlocksViaProxy => kind.has_blocks() && t.via.is_some(),
        }
    }
}

/// A check: its name, what it needs of a kind, and the check.
type Check = (&'static str, Needs, fn(&Suite));

/// The conformance suite: every check, by name, with what it needs of a kind.
const CHECKS: &[Check] = &[
    (
        "keys are checked before any request",
        Needs::Objects,
        keys_are_checked,
    ),
    (
        "an object reads back whole",
        Needs::Objects,
        object_round_trip,
    ),
    ("ranges are exact", Needs::Objects, ranges_are_exact),
    (
        "keys URLs must escape reach the object",
        Needs::Objects,
        odd_keys,
    ),
    (
        "threads share one warehouse",
        Needs::Objects,
        threads_share_one_warehouse,
    ),
    (
        "a bad range is an error, not a shorter answer",
        Needs::Objects,
        bad_ranges,
    ),
    (
        "a missing object is NotFound naming its key",
        Needs::Objects,
        missing_object,
    ),
    (
        "puts are idempotent, empty objects too",
        Needs::WritableObjects,
        idempotent_puts,
    ),
    (
        "a read-only kind refuses writes",
        Needs::ReadOnly,
        read_only_refuses_writes,
    ),
    ("listing by prefix", Needs::Listing, listing_by_prefix),
    (
        "no listing where the kind cannot list",
        Needs::NoListing,
        no_listing,
    ),
    ("object kinds offer no blocks", Needs::Objects, no_blocks),
    (
        "a stalled server times out within the deadline",
        Needs::ObjectsViaProxy,
        stalled_server,
    ),
    (
        "a blackholed address times out within the deadline",
        Needs::ObjectsViaProxy,
        blackhole,
    ),
    (
        "a reset in the middle of a body is an error",
        Needs::ObjectsViaProxy,
        reset_mid_body,
    ),
    (
        "no answer and no server are errors",
        Needs::ObjectsViaProxy,
        no_answer,
    ),
    (
        "a truncated body is an error",
        Needs::ObjectsViaProxy,
        truncated_body,
    ),
    (
        "a wrong Content-Range is refused",
        Needs::ObjectsViaProxy,
        wrong_content_range,
    ),
    ("a block reads back by CID", Needs::Blocks, block_round_trip),
    (
        "puts of blocks are idempotent",
        Needs::WritableBlocks,
        idempotent_block_puts,
    ),
    ("a missing block is NotFound", Needs::Blocks, missing_block),
    (
        "an unverifiable multihash is refused before any request",
        Needs::Blocks,
        unverifiable,
    ),
    ("block kinds offer no objects", Needs::Blocks, no_objects),
    (
        "flipped bytes fail verification",
        Needs::BlocksViaProxy,
        flipped_block,
    ),
    (
        "a truncated block is an error",
        Needs::BlocksViaProxy,
        truncated_block,
    ),
    (
        "a stalled block server times out",
        Needs::BlocksViaProxy,
        stalled_block_server,
    ),
];

/// Seeds the fixtures, then runs every check that applies to the target, each by name; fails
/// listing every check that failed.
fn run_suite(t: &Target) {
    let kind = t.wh.kind();
    let mut suite = Suite {
        t,
        wh: &*t.wh,
        name: t.name,
        data: noise(7, SIZE),
        blocks: Vec::new(),
    };
    if kind.has_objects() {
        let seed = t.seed.as_ref().expect("a kind with objects has a seed");
        seed(KEY, &suite.data);
    }
    if kind.has_blocks() {
        let seed = t
            .seed_block
            .as_ref()
            .expect("a kind with blocks has a seed");
        let node = b"\xa1\x61a\x01".to_vec(); // DAG-CBOR {"a": 1}
        for (codec, hash, bytes) in [
            (RAW, BlockHash::Sha2_256, b"hello\n".to_vec()),
            (RAW, BlockHash::Blake3, marked_block(1)),
            (DAG_CBOR, BlockHash::Blake3, node),
            (RAW, BlockHash::Sha2_256, marked_block(2)),
        ] {
            let cid = seed(codec, hash, &bytes);
            assert_eq!(
                cid,
                block_cid(codec, hash, &bytes),
                "{}: seeded CID",
                t.name
            );
            suite.blocks.push((cid, bytes));
        }
    }
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for (check, needs, f) in CHECKS {
        if !needs.met_by(t) {
            continue;
        }
        ran.push(*check);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&suite))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("  {check}: {why}"));
        }
    }
    assert!(!ran.is_empty(), "{}: no check applies", t.name);
    assert!(
        failed.is_empty(),
        "{}: {} of {} checks failed:\n{}",
        t.name,
        failed.len(),
        ran.len(),
        failed.join("\n")
    );
    println!(
        "{}: {} checks passed: {}",
        t.name,
        ran.len(),
        ran.join("; ")
    );
}

fn assert_invalid_key<T: std::fmt::Debug>(r: ware_fetchers::Result<T>, what: &str) {
    assert!(
        matches!(r, Err(Error::InvalidKey { .. })),
        "{what}: expected InvalidKey, got {r:?}"
    );
}

fn keys_are_checked(s: &Suite) {
    let (wh, name) = (s.wh, s.name);
    for bad in ["", "/abs", "a/../b", "..", "a//b", "trailing/", "./a"] {
        assert_invalid_key(wh.get(bad), &format!("{name} get {bad:?}"));
        assert_invalid_key(wh.exists(bad), &format!("{name} exists {bad:?}"));
        assert_invalid_key(wh.get_range(bad, 0..1), &format!("{name} range {bad:?}"));
        if wh.kind().is_writable() {
            assert_invalid_key(
                wh.put(bad, Bytes::from_static(b"x")),
                &format!("{name} put {bad:?}"),
            );
        }
    }
}

fn object_round_trip(s: &Suite) {
    assert_eq!(s.wh.get(KEY).unwrap(), s.data, "{}: get", s.name);
    assert!(s.wh.exists(KEY).unwrap(), "{}: exists", s.name);
}

/// Start, middle, end, one byte, everything; exact lengths; an empty range is empty.
fn ranges_are_exact(s: &Suite) {
    let n = SIZE as u64;
    for r in [0..100, 1000..21_000, n - 100..n, 5..6, n - 1..n, 0..n] {
        let got = s.wh.get_range(KEY, r.clone()).unwrap();
        assert_eq!(
            &got[..],
            &s.data[r.start as usize..r.end as usize],
            "{}: range {r:?}",
            s.name
        );
    }
    assert!(
        s.wh.get_range(KEY, 10..10).unwrap().is_empty(),
        "{}",
        s.name
    );
}

fn odd_keys(s: &Suite) {
    let odd = "suite/odd keys/ünï cödé+%20?#";
    (s.t.seed.as_ref().unwrap())(odd, b"odd");
    assert_eq!(&s.wh.get(odd).unwrap()[..], b"odd", "{}: {odd:?}", s.name);
    assert!(s.wh.exists(odd).unwrap(), "{}: {odd:?}", s.name);
}

/// One warehouse shared by many threads (as FUSE threads share it).
fn threads_share_one_warehouse(s: &Suite) {
    let (wh, data, name) = (s.wh, &s.data, s.name);
    std::thread::scope(|scope| {
        for i in 0..8u64 {
            scope.spawn(move || {
                let r = i * 5000..i * 5000 + 3000;
                let got = wh.get_range(KEY, r.clone()).unwrap();
                assert_eq!(&got[..], &data[r.start as usize..r.end as usize], "{name}");
            });
        }
    });
}

/// A range past the end is an error, not the shorter tail; a backwards range is refused.
fn bad_ranges(s: &Suite) {
    let n = SIZE as u64;
    let r = s.wh.get_range(KEY, n - 10..n + 10);
    assert!(
        r.is_err(),
        "{}: range past the end gave {:?}",
        s.name,
        r.map(|b| b.len())
    );
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = s.wh.get_range(KEY, 10..5);
    assert!(
        matches!(backwards, Err(Error::InvalidRange { .. })),
        "{}: {backwards:?}",
        s.name
    );
}

fn missing_object(s: &Suite) {
    let (wh, name) = (s.wh, s.name);
    let missing = "suite/objects/missing";
    let r = wh.get(missing);
    assert!(matches!(r, Err(Error::NotFound { .. })), "{name}: {r:?}");
    if let Err(e) = &r {
        assert!(e.to_string().contains(missing), "{name}: {e} names the key");
    }
    let r = wh.get_range(missing, 0..10);
    assert!(matches!(r, Err(Error::NotFound { .. })), "{name}: {r:?}");
    assert!(!wh.exists(missing).unwrap(), "{name}: exists(missing)");
}

fn idempotent_puts(s: &Suite) {
    let k = "suite/objects/twice";
    s.wh.put(k, Bytes::from_static(b"same")).unwrap();
    s.wh.put(k, Bytes::from_static(b"same")).unwrap();
    assert_eq!(&s.wh.get(k).unwrap()[..], b"same", "{}", s.name);
    s.wh.put(k, Bytes::new()).unwrap();
    assert!(s.wh.get(k).unwrap().is_empty(), "{}: empty object", s.name);
}

fn read_only_refuses_writes(s: &Suite) {
    let r = s.wh.put(KEY, Bytes::from(s.data.clone()));
    assert!(
        matches!(r, Err(Error::ReadOnly { .. })),
        "{}: put on a read-only kind: {r:?}",
        s.name
    );
    let r =
        s.wh.put_block(RAW, BlockHash::Sha2_256, Bytes::from_static(b"x"));
    assert!(
        matches!(r, Err(Error::ReadOnly { .. } | Error::Unsupported { .. })),
        "{}: put_block on a read-only kind: {r:?}",
        s.name
    );
}

fn listing_by_prefix(s: &Suite) {
    let (wh, name) = (s.wh, s.name);
    for k in ["list/a/1", "list/a/2", "list/b", "listx", "lis"] {
        wh.put(k, Bytes::from(k.as_bytes().to_vec())).unwrap();
    }
    assert_eq!(
        wh.list("list/").unwrap(),
        ["list/a/1", "list/a/2", "list/b"],
        "{name}"
    );
    assert_eq!(
        wh.list("list/a").unwrap(),
        ["list/a/1", "list/a/2"],
        "{name}"
    );
    assert_eq!(wh.list("list").unwrap().len(), 4, "{name}: string prefix");
    assert!(wh.list("nothing/").unwrap().is_empty(), "{name}");
    assert!(wh.list("").unwrap().contains(&KEY.to_owned()), "{name}");
    assert!(
        matches!(wh.list("../"), Err(Error::InvalidKey { .. })),
        "{name}"
    );
}

fn no_listing(s: &Suite) {
    assert!(
        matches!(s.wh.list(""), Err(Error::Unsupported { .. })),
        "{}",
        s.name
    );
}

fn no_blocks(s: &Suite) {
    let cid = block_cid(RAW, BlockHash::Sha2_256, b"hello\n");
    assert!(
        matches!(s.wh.get_block(&cid), Err(Error::Unsupported { .. })),
        "{}",
        s.name
    );
}

/// The warehouse of `s` opened through `proxy`, for a fault check.
fn through(s: &Suite, proxy: SocketAddr) -> Arc<dyn Warehouse> {
    let (_, open_at) = s.t.via.as_ref().expect("a fault check needs a server");
    open_at(proxy)
}

fn upstream(s: &Suite) -> SocketAddr {
    s.t.via.as_ref().expect("a fault check needs a server").0
}

/// `r` is a `Timeout` that came within the deadline (and some slack).
fn timed_out<T: std::fmt::Debug>(what: &str, (r, took): (ware_fetchers::Result<T>, Duration)) {
    assert!(matches!(r, Err(Error::Timeout { .. })), "{what}: {r:?}");
    assert!(
        took < opts().deadline + Duration::from_millis(500),
        "{what} returned after {took:?}"
    );
}

fn stalled_server(s: &Suite) {
    let stall = Proxy::start(upstream(s), Fault::Stall);
    let wh = through(s, stall.addr);
    let name = s.name;
    timed_out(&format!("{name} stalled get"), timed(|| wh.get(KEY)));
    timed_out(
        &format!("{name} stalled range"),
        timed(|| wh.get_range(KEY, 0..10)),
    );
    timed_out(&format!("{name} stalled exists"), timed(|| wh.exists(KEY)));
    if wh.kind().is_writable() {
        timed_out(
            &format!("{name} stalled put"),
            timed(|| wh.put("suite/faults/stalled", Bytes::from_static(b"x"))),
        );
    }
}

/// Handshakes never complete.
fn blackhole(s: &Suite) {
    let hole = Proxy::blackhole();
    let wh = through(s, hole.addr);
    timed_out(&format!("{} blackholed get", s.name), timed(|| wh.get(KEY)));
}

fn reset_mid_body(s: &Suite) {
    let rst = Proxy::start(upstream(s), Fault::Reset(3000));
    let wh = through(s, rst.addr);
    for (what, r) in [
        ("get", wh.get(KEY).map(|b| b.len())),
        ("range", wh.get_range(KEY, 0..20_000).map(|b| b.len())),
    ] {
        assert!(
            matches!(r, Err(Error::Transport { .. })),
            "{}: reset {what} gave {r:?}",
            s.name
        );
    }
}

/// A connection closed before any answer, and no server at all: errors, quickly.
fn no_answer(s: &Suite) {
    let closed = Proxy::start(upstream(s), Fault::Truncate(0));
    let r = through(s, closed.addr).get(KEY);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{} closed: {r:?}",
        s.name
    );
    let nobody = servers::free_port();
    let r = through(s, SocketAddr::from(([127, 0, 0, 1], nobody))).get(KEY);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{} refused: {r:?}",
        s.name
    );
}

fn truncated_body(s: &Suite) {
    let cut = Proxy::start(upstream(s), Fault::Truncate(4000));
    let wh = through(s, cut.addr);
    let r = wh.get(KEY);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{}: truncated get gave {:?}",
        s.name,
        r.map(|b| b.len())
    );
    let r = wh.get_range(KEY, 0..20_000);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{}: truncated range gave {:?}",
        s.name,
        r.map(|b| b.len())
    );
}

/// The server says it sends another range than the one asked for.
fn wrong_content_range(s: &Suite) {
    let lie = Proxy::start(
        upstream(s),
        Fault::Replace(b"bytes 100-199/".to_vec(), b"bytes 101-199/".to_vec()),
    );
    let wh = through(s, lie.addr);
    let r = wh.get_range(KEY, 100..200);
    // nginx: checked here (BadResponse); S3: object_store checks it first (a transport error).
    assert!(
        matches!(r, Err(Error::BadResponse { .. } | Error::Transport { .. })),
        "{}: wrong Content-Range: {r:?}",
        s.name
    );
    // The same proxy passes other ranges untouched.
    assert_eq!(
        &wh.get_range(KEY, 200..300).unwrap()[..],
        &s.data[200..300],
        "{}",
        s.name
    );
}

fn block_round_trip(s: &Suite) {
    for (cid, data) in &s.blocks {
        assert_eq!(
            &s.wh.get_block(cid).unwrap()[..],
            &data[..],
            "{}: {cid}",
            s.name
        );
    }
    // The known fixture, and warefs's own forms of CID.
    assert_eq!(
        s.blocks[0].0.to_string(),
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
    );
    assert_eq!(s.blocks[1].0.hash().code(), BLAKE3);
    assert!(s.blocks[1].0.to_string().starts_with("bafkr4i"));
    assert!(s.blocks[2].0.to_string().starts_with("bafyr4i"));
}

fn idempotent_block_puts(s: &Suite) {
    for _ in 0..2 {
        let cid =
            s.wh.put_block(RAW, BlockHash::Sha2_256, Bytes::from_static(b"hello\n"))
                .unwrap();
        assert_eq!(cid, s.blocks[0].0, "{}", s.name);
    }
}

/// A node answers once its search timeout passes.
fn missing_block(s: &Suite) {
    let missing = block_cid(RAW, BlockHash::Sha2_256, b"never stored");
    let r = s.wh.get_block(&missing);
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "{}: {r:?}",
        s.name
    );
}

fn unverifiable(s: &Suite) {
    let sha512 = Cid::new_v1(
        RAW,
        cid::multihash::Multihash::wrap(0x13, &[0; 64]).unwrap(),
    );
    let r = s.wh.get_block(&sha512);
    assert!(matches!(r, Err(Error::Cid { .. })), "{}: {r:?}", s.name);
}

fn no_objects(s: &Suite) {
    assert!(matches!(s.wh.get("a"), Err(Error::Unsupported { .. })));
    assert!(matches!(s.wh.list(""), Err(Error::Unsupported { .. })));
    let r = s.wh.put("a", Bytes::new());
    assert!(
        matches!(r, Err(Error::Unsupported { .. } | Error::ReadOnly { .. })),
        "{}: {r:?}",
        s.name
    );
}

/// Blocks with the marker fail verification through a proxy that flips it; others pass.
fn flipped_block(s: &Suite) {
    let flip = Proxy::start(
        upstream(s),
        Fault::Replace(b"FLIPME-MARKER".to_vec(), b"FLIPME-MARKEX".to_vec()),
    );
    let wh = through(s, flip.addr);
    for (cid, _) in [&s.blocks[1], &s.blocks[3]] {
        let r = wh.get_block(cid);
        assert!(matches!(r, Err(Error::Verify { .. })), "{}: {r:?}", s.name);
    }
    assert_eq!(&wh.get_block(&s.blocks[0].0).unwrap()[..], b"hello\n");
}

fn truncated_block(s: &Suite) {
    let cut = Proxy::start(upstream(s), Fault::Truncate(600));
    let r = through(s, cut.addr).get_block(&s.blocks[1].0);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{}: truncated block: {r:?}",
        s.name
    );
}

fn stalled_block_server(s: &Suite) {
    let stall = Proxy::start(upstream(s), Fault::Stall);
    let wh = through(s, stall.addr);
    timed_out(
        &format!("{} stalled block", s.name),
        timed(|| wh.get_block(&s.blocks[0].0)),
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// Block content with a marker the proxy can flip.
fn marked_block(seed: u64) -> Vec<u8> {
    let mut b = b"FLIPME-MARKER ".to_vec();
    b.extend(noise(seed, 3000));
    b
}

// --- every kind ---------------------------------------------------------------------------------

/// A seed that writes through the warehouse itself (writable kinds).
fn seed_through(wh: &Arc<dyn Warehouse>) -> Option<Seed> {
    let wh = wh.clone();
    Some(Box::new(move |k, d| {
        wh.put(k, Bytes::from(d.to_vec())).unwrap()
    }))
}

#[test]
fn dir() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}/wh", tmp.path().display());
    let wh = open(&url, &opts()).unwrap();
    assert_eq!(wh.kind(), Kind::Dir);
    run_suite(&Target {
        name: "dir",
        seed: seed_through(&wh),
        wh,
        seed_block: None,
        via: None,
    });
    // Puts leave no temporary files behind.
    let leftovers: Vec<_> = walk(&tmp.path().join("wh"))
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn http_nginx() {
    let Some(nginx) = started(Nginx::start()) else {
        return;
    };
    let base = |addr: SocketAddr| format!("http://{addr}/base");
    let wh = open(&base(nginx.addr), &opts()).unwrap();
    assert_eq!(wh.kind(), Kind::Http);
    let root = nginx.root().to_path_buf();
    run_suite(&Target {
        name: "http (nginx)",
        wh,
        seed: Some(Box::new(move |k, d| {
            servers::write_readable(&root, &format!("base/{k}"), d)
        })),
        seed_block: None,
        via: Some((
            nginx.addr,
            Box::new(move |a| open(&base(a), &opts()).unwrap()),
        )),
    });

    // A server without Range support answers 200 with the whole object: an error, not data.
    let Some(py) = started(PyHttp::start(nginx.root())) else {
        return;
    };
    let wh = open(&format!("http://{}/base", py.addr), &opts()).unwrap();
    assert_eq!(wh.get(KEY).unwrap().len(), SIZE);
    let r = wh.get_range(KEY, 10..20);
    assert!(
        matches!(r, Err(Error::BadResponse { .. })),
        "200 to a range request accepted: {r:?}"
    );
}

/// TLS is on and verified: a self-signed certificate is refused, not trusted.
#[test]
fn https_refuses_an_untrusted_certificate() {
    let Some(nginx) = started(Nginx::start_tls()) else {
        return;
    };
    nginx.seed("base/x", b"secret");
    let wh = open(&format!("https://{}/base", nginx.addr), &opts()).unwrap();
    let r = wh.get("x");
    match r {
        Err(Error::Transport { ref message, .. }) if message.contains("certificate") => {}
        other => panic!("untrusted certificate: {other:?}"),
    }
}

#[test]
fn s3_s3s_fs() {
    let Some(s3) = started(S3s::start()) else {
        return;
    };
    let url = url::Url::parse(&format!("s3://{}/pre/fix", servers::S3_BUCKET)).unwrap();
    let through = {
        let url = url.clone();
        let settings = s3_settings(s3.addr);
        move |a: SocketAddr| -> Arc<dyn Warehouse> {
            let s = S3Settings {
                endpoint: Some(format!("http://{a}")),
                ..settings.clone()
            };
            Arc::new(S3Warehouse::with_settings(&url, &opts(), &s).unwrap())
        }
    };
    let wh = through(s3.addr);
    assert_eq!(wh.kind(), Kind::S3);
    assert_eq!(wh.url(), "s3://wares/pre/fix");
    run_suite(&Target {
        name: "s3 (s3s-fs)",
        seed: seed_through(&wh),
        wh,
        seed_block: None,
        via: Some((s3.addr, Box::new(through))),
    });

    // A wrong secret is refused (403), not retried into a timeout.
    let bad = S3Settings {
        secret_access_key: Some("wrong".into()),
        ..s3_settings(s3.addr)
    };
    let wh = S3Warehouse::with_settings(&url, &opts(), &bad).unwrap();
    let (r, took) = timed(|| wh.get(KEY));
    assert!(
        r.is_err() && !matches!(r, Err(Error::Timeout { .. })),
        "wrong secret: {r:?}"
    );
    assert!(took < opts().deadline, "wrong secret retried for {took:?}");

    // The endpoint from the URL's query (path-style, plain http on loopback).
    let q = url::Url::parse(&format!(
        "s3://{}/pre/fix?endpoint=http://{}&region=us-east-1",
        servers::S3_BUCKET,
        s3.addr
    ))
    .unwrap();
    let creds = S3Settings {
        endpoint: None,
        region: None,
        ..s3_settings(s3.addr)
    };
    let wh = S3Warehouse::with_settings(&q, &opts(), &creds).unwrap();
    assert_eq!(wh.get(KEY).unwrap().len(), SIZE);
}

/// A js-ipfs node through its RPC API (warefs's BLAKE3 blocks go in as a CAR: js-ipfs refuses
/// BLAKE3 on block/put), then nginx serving the same blocks as a trustless gateway.
#[test]
fn ipfs_node_and_gateway() {
    let Some(node) = started(JsIpfs::start()) else {
        return;
    };
    let Some(nginx) = started(Nginx::start()) else {
        return;
    };
    let rpc_url = |a: SocketAddr| format!("ipfs+http://{a}");
    let gw_url = |a: SocketAddr| format!("ipfs+gateway+http://{a}");
    let rpc = open(&rpc_url(node.api), &opts()).unwrap();
    let gw = open(&gw_url(nginx.addr), &opts()).unwrap();
    assert_eq!(rpc.kind(), Kind::IpfsRpc);
    assert_eq!(gw.kind(), Kind::IpfsGateway);

    let putter = rpc.clone();
    run_suite(&Target {
        name: "ipfs (js-ipfs RPC)",
        wh: rpc.clone(),
        seed: None,
        seed_block: Some(Box::new(move |codec, hash, d| {
            putter
                .put_block(codec, hash, Bytes::from(d.to_vec()))
                .unwrap()
        })),
        via: Some((
            node.api,
            Box::new(move |a| open(&rpc_url(a), &opts()).unwrap()),
        )),
    });
    let root = nginx.root().to_path_buf();
    run_suite(&Target {
        name: "ipfs gateway (nginx)",
        wh: gw,
        seed: None,
        seed_block: Some(Box::new(move |codec, hash, d| {
            let cid = block_cid(codec, hash, d);
            servers::write_readable(&root, &format!("ipfs/{cid}"), d);
            cid
        })),
        via: Some((
            nginx.addr,
            Box::new(move |a| open(&gw_url(a), &opts()).unwrap()),
        )),
    });

    // A CIDv0 names the same bytes as dag-pb; the node keeps blocks by multihash.
    let v0: Cid = "QmUJPTFZnR2CPGAzmfdYPghgrFtYFB6pf1BqMvqfiPDam8"
        .parse()
        .unwrap();
    assert_eq!(&rpc.get_block(&v0).unwrap()[..], b"hello\n");
}

/// Configuration from the `AWS_*` variables and from the shared files, checked in child
/// processes of this test binary (setting variables in this multi-threaded process would race
/// with the other tests). Each child runs [`s3_config_child`].
#[test]
fn s3_config_from_env_and_files() {
    let Some(s3) = started(S3s::start()) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let creds = home.path().join("creds");
    let config = home.path().join("config");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [warefs]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            servers::S3_ACCESS_KEY,
            servers::S3_SECRET_KEY
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[profile warefs]\nregion = us-east-1\nendpoint_url = http://{}\n",
            s3.addr
        ),
    )
    .unwrap();
    let endpoint = format!("http://{}", s3.addr);
    let variants: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "env",
            vec![
                ("AWS_ACCESS_KEY_ID", servers::S3_ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", servers::S3_SECRET_KEY),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", &endpoint),
            ],
        ),
        (
            "files",
            vec![
                ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
                ("AWS_PROFILE", "warefs"),
            ],
        ),
    ];
    for (label, vars) in variants {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "s3_config_child",
            "--nocapture",
            "--test-threads=1",
        ]);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", home.path())
            .env("WARE_S3_CHILD", label)
            .envs(vars);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("CHILD OK"),
            "{label}: {text}"
        );
    }
}

/// The child half of [`s3_config_from_env_and_files`]; does nothing when run on its own.
#[test]
fn s3_config_child() {
    let Ok(label) = std::env::var("WARE_S3_CHILD") else {
        return;
    };
    let wh = open("s3://wares/config", &opts()).unwrap();
    let key = format!("{label}/object");
    wh.put(&key, Bytes::from(label.clone().into_bytes()))
        .unwrap();
    assert_eq!(wh.get(&key).unwrap(), label.as_bytes());
    assert_eq!(wh.list(&format!("{label}/")).unwrap(), [key]);
    println!("CHILD OK");
}

/// A directory warehouse opens only regular files inside it: a FIFO in place of an object
/// (which would block an open or a read forever), a symlink out of the root, or a directory
/// are errors naming the key, at once.
#[test]
fn dir_serves_only_regular_files_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("wh");
    let url = format!("file://{}", root.display());
    let wh = open(&url, &opts()).unwrap();
    wh.put("packs/real.pack", Bytes::from_static(b"0123456789"))
        .unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(root.join("packs/fifo.pack"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("packs/out.pack")).unwrap();
    std::os::unix::fs::symlink("../../secret", root.join("packs/rel.pack")).unwrap();
    std::fs::create_dir(root.join("packs/dir.pack")).unwrap();
    for key in [
        "packs/fifo.pack",
        "packs/out.pack",
        "packs/rel.pack",
        "packs/dir.pack",
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = wh.clone();
        let k = key.to_string();
        std::thread::spawn(move || {
            let _ = tx.send((
                w.get(&k).map(|b| b.to_vec()),
                w.get_range(&k, 0..4).map(|b| b.to_vec()),
            ));
        });
        let (whole, range) = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{key}: a read hangs"));
        for r in [whole, range] {
            let e = r.expect_err(key).to_string();
            assert!(e.contains(key), "{key}: {e}");
            assert!(!e.contains("outside"), "{e}");
        }
    }
    // A regular file still reads, whole and in part.
    assert_eq!(&wh.get("packs/real.pack").unwrap()[..], b"0123456789");
    assert_eq!(&wh.get_range("packs/real.pack", 2..5).unwrap()[..], b"234");
}
