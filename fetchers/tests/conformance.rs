//! One conformance suite that every kind of warehouse runs against its real server (restic's
//! `internal/backend/test` in spirit): a directory; nginx (and python's http.server, a server
//! without Range support); s3s-fs; a js-ipfs node through its RPC API, and nginx serving the
//! node's blocks as a trustless gateway. Faults come from a TCP proxy between the warehouse
//! and the server. Deadlines are 1–2 s, so a hang fails fast.

mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Fault, JsIpfs, Nginx, Proxy, PyHttp, S3s, skip};
use ware_fetchers::{
    BLAKE3, BlockHash, Bytes, Cid, DAG_CBOR, Error, FetchOptions, Kind, RAW, S3Settings,
    S3Warehouse, Warehouse, block_cid, open,
};

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

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The size of the main test object: several TCP segments, so truncation cuts into the body.
const SIZE: usize = 64 << 10;

/// Puts an object where a server will serve it.
type Seed = Box<dyn Fn(&str, &[u8])>;
/// Opens the warehouse under test through a proxy at the given address.
type Through = Box<dyn Fn(SocketAddr) -> Arc<dyn Warehouse>>;

/// A warehouse under test, with what the suite needs to know about its server.
struct Target {
    name: &'static str,
    wh: Arc<dyn Warehouse>,
    /// Puts an object where the server will serve it (read-only kinds are seeded behind the
    /// server's back; writable ones through the warehouse).
    seed: Seed,
    /// The server's address and how to open the same warehouse through a proxy at an address,
    /// for the fault tests; `None` for a local directory.
    via: Option<(SocketAddr, Through)>,
}

fn assert_invalid_key<T: std::fmt::Debug>(r: ware_fetchers::Result<T>, what: &str) {
    assert!(
        matches!(r, Err(Error::InvalidKey { .. })),
        "{what}: expected InvalidKey, got {r:?}"
    );
}

/// Objects by key: every kind with objects passes all of this.
fn objects_suite(t: &Target) {
    let wh = &*t.wh;
    let name = t.name;
    let data = noise(7, SIZE);
    let key = "suite/objects/data";

    // Key validation, before any request.
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

    // Round trip.
    if wh.kind().is_writable() {
        wh.put(key, Bytes::from(data.clone())).unwrap();
    } else {
        (t.seed)(key, &data);
        let r = wh.put(key, Bytes::from(data.clone()));
        assert!(
            matches!(r, Err(Error::ReadOnly { .. })),
            "{name}: put on a read-only kind: {r:?}"
        );
    }
    assert_eq!(wh.get(key).unwrap(), data, "{name}: get");
    assert!(wh.exists(key).unwrap(), "{name}: exists");

    // Ranges: start, middle, end, one byte, empty; exact lengths.
    let n = SIZE as u64;
    for r in [0..100, 1000..21_000, n - 100..n, 5..6, n - 1..n, 0..n] {
        let got = wh.get_range(key, r.clone()).unwrap();
        assert_eq!(
            &got[..],
            &data[r.start as usize..r.end as usize],
            "{name}: range {r:?}"
        );
    }
    assert!(wh.get_range(key, 10..10).unwrap().is_empty(), "{name}");
    // Keys with characters that URLs must escape reach the same object.
    let odd = "suite/odd keys/ünï cödé+%20?#";
    if wh.kind().is_writable() {
        wh.put(odd, Bytes::from_static(b"odd")).unwrap();
    } else {
        (t.seed)(odd, b"odd");
    }
    assert_eq!(&wh.get(odd).unwrap()[..], b"odd", "{name}: {odd:?}");
    assert!(wh.exists(odd).unwrap(), "{name}: {odd:?}");

    // One warehouse shared by many threads (as FUSE threads share it).
    std::thread::scope(|s| {
        for i in 0..8u64 {
            let data = &data;
            s.spawn(move || {
                let r = i * 5000..i * 5000 + 3000;
                let got = wh.get_range(key, r.clone()).unwrap();
                assert_eq!(&got[..], &data[r.start as usize..r.end as usize], "{name}");
            });
        }
    });
    // A range past the end is an error, not the shorter tail.
    let r = wh.get_range(key, n - 10..n + 10);
    assert!(
        r.is_err(),
        "{name}: range past the end gave {:?}",
        r.map(|b| b.len())
    );
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = wh.get_range(key, 10..5);
    assert!(
        matches!(backwards, Err(Error::InvalidRange { .. })),
        "{name}: {backwards:?}"
    );

    // Missing objects.
    let missing = "suite/objects/missing";
    let r = wh.get(missing);
    assert!(matches!(r, Err(Error::NotFound { .. })), "{name}: {r:?}");
    if let Err(e) = &r {
        assert!(e.to_string().contains(missing), "{name}: {e} names the key");
    }
    let r = wh.get_range(missing, 0..10);
    assert!(matches!(r, Err(Error::NotFound { .. })), "{name}: {r:?}");
    assert!(!wh.exists(missing).unwrap(), "{name}: exists(missing)");

    // Idempotent puts.
    if wh.kind().is_writable() {
        let k = "suite/objects/twice";
        wh.put(k, Bytes::from_static(b"same")).unwrap();
        wh.put(k, Bytes::from_static(b"same")).unwrap();
        assert_eq!(&wh.get(k).unwrap()[..], b"same", "{name}");
        wh.put(k, Bytes::new()).unwrap();
        assert!(wh.get(k).unwrap().is_empty(), "{name}: empty object");
    }

    // Listing with a prefix.
    if wh.kind().can_list() {
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
        assert!(wh.list("").unwrap().contains(&key.to_owned()), "{name}");
        assert!(
            matches!(wh.list("../"), Err(Error::InvalidKey { .. })),
            "{name}"
        );
    } else {
        assert!(
            matches!(wh.list(""), Err(Error::Unsupported { .. })),
            "{name}"
        );
    }

    // Blocks are not offered by object kinds.
    let cid = block_cid(RAW, BlockHash::Sha2_256, b"hello\n");
    assert!(
        matches!(wh.get_block(&cid), Err(Error::Unsupported { .. })),
        "{name}"
    );

    // Faults between the warehouse and its server.
    if let Some((upstream, through)) = &t.via {
        object_faults(name, *upstream, through.as_ref(), key, &data);
    }
}

/// A stalled server gives `Timeout` within the deadline; a cut-off body or a wrong
/// `Content-Range` is rejected, never returned as data.
fn object_faults(
    name: &str,
    upstream: SocketAddr,
    through: &dyn Fn(SocketAddr) -> Arc<dyn Warehouse>,
    key: &str,
    data: &[u8],
) {
    let deadline = opts().deadline;

    let stall = Proxy::start(upstream, Fault::Stall);
    let wh = through(stall.addr);
    for (what, r) in [
        ("get", timed(|| wh.get(key).map(|_| ()))),
        ("range", timed(|| wh.get_range(key, 0..10).map(|_| ()))),
        ("exists", timed(|| wh.exists(key).map(|_| ()))),
    ] {
        let (r, took) = r;
        assert!(
            matches!(r, Err(Error::Timeout { .. })),
            "{name} stalled {what}: {r:?}"
        );
        assert!(
            took < deadline + Duration::from_millis(500),
            "{name} stalled {what} returned after {took:?}"
        );
    }
    if wh.kind().is_writable() {
        let (r, took) = timed(|| wh.put("suite/faults/stalled", Bytes::from_static(b"x")));
        assert!(
            matches!(r, Err(Error::Timeout { .. })),
            "{name} stalled put: {r:?}"
        );
        assert!(
            took < deadline + Duration::from_millis(500),
            "{name}: put took {took:?}"
        );
    }
    drop(stall);

    // A blackholed address (handshakes never complete): Timeout within the deadline too.
    let hole = Proxy::blackhole();
    let wh = through(hole.addr);
    let (r, took) = timed(|| wh.get(key).map(|_| ()));
    assert!(
        matches!(r, Err(Error::Timeout { .. })),
        "{name} blackholed get: {r:?}"
    );
    assert!(
        took < deadline + Duration::from_millis(500),
        "{name} blackholed get returned after {took:?}"
    );
    drop(hole);

    // A reset in the middle of a body: an error, never a short answer taken as data.
    let rst = Proxy::start(upstream, Fault::Reset(3000));
    let wh = through(rst.addr);
    for (what, r) in [
        ("get", wh.get(key).map(|b| b.len())),
        ("range", wh.get_range(key, 0..20_000).map(|b| b.len())),
    ] {
        assert!(
            matches!(r, Err(Error::Transport { .. })),
            "{name}: reset {what} gave {r:?}"
        );
    }
    drop(rst);

    // A connection closed before any answer, and no server at all: errors, quickly.
    let reset = Proxy::start(upstream, Fault::Truncate(0));
    let wh = through(reset.addr);
    let r = wh.get(key);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{name} reset: {r:?}"
    );
    drop(reset);
    let nobody = harness::free_port();
    let wh = through(SocketAddr::from(([127, 0, 0, 1], nobody)));
    let r = wh.get(key);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{name} refused: {r:?}"
    );

    let cut = Proxy::start(upstream, Fault::Truncate(4000));
    let wh = through(cut.addr);
    let r = wh.get(key);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{name}: truncated get gave {:?}",
        r.map(|b| b.len())
    );
    let r = wh.get_range(key, 0..20_000);
    assert!(
        matches!(r, Err(Error::Transport { .. })),
        "{name}: truncated range gave {:?}",
        r.map(|b| b.len())
    );
    drop(cut);

    // The server says it sends another range than the one asked for.
    let lie = Proxy::start(
        upstream,
        Fault::Replace(b"bytes 100-199/".to_vec(), b"bytes 101-199/".to_vec()),
    );
    let wh = through(lie.addr);
    let r = wh.get_range(key, 100..200);
    // nginx: checked here (BadResponse); S3: object_store checks it first (a transport error).
    assert!(
        matches!(r, Err(Error::BadResponse { .. } | Error::Transport { .. })),
        "{name}: wrong Content-Range: {r:?}"
    );
    // The same proxy passes other ranges untouched.
    assert_eq!(
        &wh.get_range(key, 200..300).unwrap()[..],
        &data[200..300],
        "{name}"
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

#[test]
fn dir() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}/wh", tmp.path().display());
    let wh = open(&url, &opts()).unwrap();
    assert_eq!(wh.kind(), Kind::Dir);
    let seeder = wh.clone();
    objects_suite(&Target {
        name: "dir",
        wh,
        seed: Box::new(move |k, d| seeder.put(k, Bytes::from(d.to_vec())).unwrap()),
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
    let nginx = match Nginx::start() {
        Ok(n) => n,
        Err(e) => return skip("http_nginx", &e),
    };
    let base = |addr: SocketAddr| format!("http://{addr}/base");
    let wh = open(&base(nginx.addr), &opts()).unwrap();
    assert_eq!(wh.kind(), Kind::Http);
    let root = nginx.root().to_path_buf();
    objects_suite(&Target {
        name: "http (nginx)",
        wh,
        seed: Box::new(move |k, d| harness::write_readable(&root, &format!("base/{k}"), d)),
        via: Some((
            nginx.addr,
            Box::new(move |a| open(&base(a), &opts()).unwrap()),
        )),
    });

    // A server without Range support answers 200 with the whole object: an error, not data.
    let py = match PyHttp::start(nginx.root()) {
        Ok(p) => p,
        Err(e) => return skip("http_nginx (python3 http.server part)", &e),
    };
    let wh = open(&format!("http://{}/base", py.addr), &opts()).unwrap();
    let key = "suite/objects/data";
    assert_eq!(wh.get(key).unwrap().len(), SIZE);
    let r = wh.get_range(key, 10..20);
    assert!(
        matches!(r, Err(Error::BadResponse { .. })),
        "200 to a range request accepted: {r:?}"
    );
}

/// TLS is on and verified: a self-signed certificate is refused, not trusted.
#[test]
fn https_refuses_an_untrusted_certificate() {
    let nginx = match Nginx::start_tls() {
        Ok(n) => n,
        Err(e) => return skip("https_refuses_an_untrusted_certificate", &e),
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
    let s3 = match S3s::start() {
        Ok(s) => s,
        Err(e) => return skip("s3_s3s_fs", &e),
    };
    let url = url::Url::parse(&format!("s3://{}/pre/fix", harness::S3_BUCKET)).unwrap();
    let through = {
        let url = url.clone();
        let settings = s3.settings(s3.addr);
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
    let seeder = wh.clone();
    objects_suite(&Target {
        name: "s3 (s3s-fs)",
        wh,
        seed: Box::new(move |k, d| seeder.put(k, Bytes::from(d.to_vec())).unwrap()),
        via: Some((s3.addr, Box::new(through))),
    });

    // A wrong secret is refused (403), not retried into a timeout.
    let bad = S3Settings {
        secret_access_key: Some("wrong".into()),
        ..s3.settings(s3.addr)
    };
    let wh = S3Warehouse::with_settings(&url, &opts(), &bad).unwrap();
    let (r, took) = timed(|| wh.get("suite/objects/data"));
    assert!(
        r.is_err() && !matches!(r, Err(Error::Timeout { .. })),
        "wrong secret: {r:?}"
    );
    assert!(took < opts().deadline, "wrong secret retried for {took:?}");

    // The endpoint from the URL's query (path-style, plain http on loopback).
    let q = url::Url::parse(&format!(
        "s3://{}/pre/fix?endpoint=http://{}&region=us-east-1",
        harness::S3_BUCKET,
        s3.addr
    ))
    .unwrap();
    let creds = S3Settings {
        endpoint: None,
        region: None,
        ..s3.settings(s3.addr)
    };
    let wh = S3Warehouse::with_settings(&q, &opts(), &creds).unwrap();
    assert_eq!(wh.get("suite/objects/data").unwrap().len(), SIZE);
}

/// Block content with a marker the proxy can flip.
fn marked_block(seed: u64) -> Vec<u8> {
    let mut b = b"FLIPME-MARKER ".to_vec();
    b.extend(noise(seed, 3000));
    b
}

#[test]
fn ipfs_node_and_gateway() {
    let node = match JsIpfs::start() {
        Ok(n) => n,
        Err(e) => return skip("ipfs_node_and_gateway", &e),
    };
    let nginx = match Nginx::start() {
        Ok(n) => n,
        Err(e) => return skip("ipfs_node_and_gateway (nginx)", &e),
    };
    let rpc_url = |a: SocketAddr| format!("ipfs+http://{a}");
    let gw_url = |a: SocketAddr| format!("ipfs+gateway+http://{a}");
    let rpc = open(&rpc_url(node.api), &opts()).unwrap();
    let gw = open(&gw_url(nginx.addr), &opts()).unwrap();
    assert_eq!(rpc.kind(), Kind::IpfsRpc);
    assert_eq!(gw.kind(), Kind::IpfsGateway);

    // The known fixture: "hello\n" as a raw sha2-256 block.
    let hello: Cid = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        .parse()
        .unwrap();
    assert_eq!(
        rpc.put_block(RAW, BlockHash::Sha2_256, Bytes::from_static(b"hello\n"))
            .unwrap(),
        hello
    );
    // Idempotent.
    assert_eq!(
        rpc.put_block(RAW, BlockHash::Sha2_256, Bytes::from_static(b"hello\n"))
            .unwrap(),
        hello
    );

    // warefs's own blocks: BLAKE3 raw chunks and dag-cbor nodes (js-ipfs refuses BLAKE3 on
    // block/put; the warehouse imports a CAR instead).
    let chunk = marked_block(1);
    let chunk_cid = rpc
        .put_block(RAW, BlockHash::Blake3, Bytes::from(chunk.clone()))
        .unwrap();
    assert_eq!(chunk_cid.hash().code(), BLAKE3);
    assert!(chunk_cid.to_string().starts_with("bafkr4i"), "{chunk_cid}");
    let node_bytes = b"\xa1\x61a\x01".to_vec(); // DAG-CBOR {"a": 1}
    let node_cid = rpc
        .put_block(DAG_CBOR, BlockHash::Blake3, Bytes::from(node_bytes.clone()))
        .unwrap();
    assert!(node_cid.to_string().starts_with("bafyr4i"), "{node_cid}");
    let sha_block = marked_block(2);
    let sha_cid = rpc
        .put_block(RAW, BlockHash::Sha2_256, Bytes::from(sha_block.clone()))
        .unwrap();

    let blocks: Vec<(Cid, Vec<u8>)> = vec![
        (hello, b"hello\n".to_vec()),
        (chunk_cid, chunk),
        (node_cid, node_bytes),
        (sha_cid, sha_block),
    ];
    // Round trip through the node, and export to the gateway's files.
    for (cid, data) in &blocks {
        let got = rpc.get_block(cid).unwrap();
        assert_eq!(&got[..], &data[..], "node: {cid}");
        nginx.seed(&format!("ipfs/{cid}"), &got);
    }
    for (cid, data) in &blocks {
        assert_eq!(&gw.get_block(cid).unwrap()[..], &data[..], "gateway: {cid}");
    }

    // A CIDv0 names the same bytes as dag-pb; the node keeps blocks by multihash.
    let v0: Cid = "QmUJPTFZnR2CPGAzmfdYPghgrFtYFB6pf1BqMvqfiPDam8"
        .parse()
        .unwrap();
    assert_eq!(&rpc.get_block(&v0).unwrap()[..], b"hello\n");

    // Missing blocks are NotFound on both (the node answers once its search timeout passes).
    let missing = block_cid(RAW, BlockHash::Sha2_256, b"never stored");
    for wh in [&rpc, &gw] {
        let r = wh.get_block(&missing);
        assert!(
            matches!(r, Err(Error::NotFound { .. })),
            "{}: {r:?}",
            wh.url()
        );
    }

    // A block whose multihash cannot be verified is refused before any request.
    let sha512 = Cid::new_v1(
        RAW,
        cid::multihash::Multihash::wrap(0x13, &[0; 64]).unwrap(),
    );
    for wh in [&rpc, &gw] {
        let r = wh.get_block(&sha512);
        assert!(matches!(r, Err(Error::Cid { .. })), "{r:?}");
    }

    // Objects by key are not IPFS's; the gateway is read-only.
    for wh in [&rpc, &gw] {
        assert!(matches!(wh.get("a"), Err(Error::Unsupported { .. })));
        assert!(matches!(wh.list(""), Err(Error::Unsupported { .. })));
    }
    let r = gw.put_block(RAW, BlockHash::Sha2_256, Bytes::from_static(b"x"));
    assert!(matches!(r, Err(Error::ReadOnly { .. })), "{r:?}");
    assert!(matches!(
        gw.put("a", Bytes::new()),
        Err(Error::ReadOnly { .. })
    ));

    // Faults, on both: flipped bytes fail verification, cut-off bodies are rejected, stalls
    // time out within the deadline.
    let deadline = opts().deadline;
    for (upstream, make) in [
        (node.api, &rpc_url as &dyn Fn(SocketAddr) -> String),
        (nginx.addr, &gw_url),
    ] {
        let flip = Proxy::start(
            upstream,
            Fault::Replace(b"FLIPME-MARKER".to_vec(), b"FLIPME-MARKEX".to_vec()),
        );
        let wh = open(&make(flip.addr), &opts()).unwrap();
        for (cid, _) in &blocks[1..2] {
            let r = wh.get_block(cid);
            assert!(
                matches!(r, Err(Error::Verify { .. })),
                "{}: {r:?}",
                wh.url()
            );
        }
        let r = wh.get_block(&sha_cid);
        assert!(
            matches!(r, Err(Error::Verify { .. })),
            "{}: {r:?}",
            wh.url()
        );
        // Blocks without the marker pass the same proxy.
        assert_eq!(&wh.get_block(&hello).unwrap()[..], b"hello\n");
        drop(flip);

        let cut = Proxy::start(upstream, Fault::Truncate(600));
        let wh = open(&make(cut.addr), &opts()).unwrap();
        let r = wh.get_block(&chunk_cid);
        assert!(
            matches!(r, Err(Error::Transport { .. })),
            "{}: truncated block: {r:?}",
            wh.url()
        );
        drop(cut);

        let stall = Proxy::start(upstream, Fault::Stall);
        let wh = open(&make(stall.addr), &opts()).unwrap();
        let (r, took) = timed(|| wh.get_block(&hello));
        assert!(
            matches!(r, Err(Error::Timeout { .. })),
            "{}: {r:?}",
            wh.url()
        );
        assert!(took < deadline + Duration::from_millis(500), "{took:?}");
    }
}

/// Configuration from the `AWS_*` variables and from the shared files, checked in child
/// processes of this test binary (setting variables in this multi-threaded process would race
/// with the other tests). Each child runs [`s3_config_child`].
#[test]
fn s3_config_from_env_and_files() {
    let s3 = match S3s::start() {
        Ok(s) => s,
        Err(e) => return skip("s3_config_from_env_and_files", &e),
    };
    let home = tempfile::tempdir().unwrap();
    let creds = home.path().join("creds");
    let config = home.path().join("config");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
             [warefs]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            harness::S3_ACCESS_KEY,
            harness::S3_SECRET_KEY
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
                ("AWS_ACCESS_KEY_ID", harness::S3_ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", harness::S3_SECRET_KEY),
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
