//! UnixFS decoding and reading, on hand-built blocks in an in-memory store (no warehouse):
//! what IPFS importers make is cross-checked end to end in mount-tests/unixfs.rs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use proptest::prelude::*;
use ware_store::node::Kind;
use ware_store::{BlockSink, Error, ForeignTree, MemStore};

use super::UnixfsTree;
use super::decode::{self, DataType, Node, encode};
use crate::{BlockHash, DAG_PB, RAW, block_cid};

/// Blocks built for a test, put into a store as a lazy mount would have cached them.
struct Dag {
    store: Arc<MemStore>,
}

impl Dag {
    fn new() -> Dag {
        Dag {
            store: Arc::new(MemStore::new()),
        }
    }
    fn put(&self, codec: u64, bytes: Vec<u8>) -> Cid {
        let cid = block_cid(codec, BlockHash::Sha2_256, &bytes);
        self.store.put_blocks(&[(cid, bytes)]).unwrap();
        cid
    }
    fn raw(&self, data: &[u8]) -> Cid {
        self.put(RAW, data.to_vec())
    }
    /// A file of raw leaves under one dag-pb node (what `--cid-version 1` makes).
    fn file(&self, leaves: &[&[u8]]) -> (Cid, u64) {
        let links: Vec<(Cid, u64)> = leaves
            .iter()
            .map(|l| (self.raw(l), l.len() as u64))
            .collect();
        let sizes: Vec<u64> = links.iter().map(|l| l.1).collect();
        let total = sizes.iter().sum();
        let data = encode::unixfs(DataType::File, b"", Some(total), &sizes, None, None, None);
        let pl: Vec<(Cid, &str, u64)> = links.iter().map(|(c, s)| (*c, "", *s)).collect();
        (self.put(DAG_PB, encode::pb(&pl, &data)), total)
    }
    fn dir(&self, entries: &[(&str, Cid)]) -> Cid {
        let mut sorted = entries.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let links: Vec<(Cid, &str, u64)> = sorted
            .iter()
            .map(|(n, c)| (*c, *n, self.tsize(c)))
            .collect();
        let data = encode::unixfs(DataType::Directory, b"", None, &[], None, None, None);
        self.put(DAG_PB, encode::pb(&links, &data))
    }
    /// A link's Tsize: for a raw leaf, its length (readers take it as the file's size).
    fn tsize(&self, cid: &Cid) -> u64 {
        use ware_store::BlockSource;
        self.store.block(cid).map(|b| b.len() as u64).unwrap_or(0)
    }
    fn tree(&self) -> UnixfsTree {
        UnixfsTree::new(self.store.clone(), Vec::new(), Duration::from_secs(2))
    }
}

#[test]
fn murmur3_is_the_x64_128_first_half() {
    // MurmurHash3_x64_128("hello", seed 0) = cbd8a7b341bd9b02 5b1e906a48ae1d19.
    assert_eq!(
        decode::hamt_hash(b"hello"),
        0xcbd8_a7b3_41bd_9b02u64.to_be_bytes()
    );
    assert_eq!(
        decode::bucket(&decode::hamt_hash(b"hello"), 0, 256),
        Some(0xcb)
    );
    assert_eq!(
        decode::bucket(&decode::hamt_hash(b"hello"), 1, 256),
        Some(0xd8)
    );
    assert_eq!(
        decode::bucket(&decode::hamt_hash(b"hello"), 7, 256),
        Some(0x02)
    );
    assert_eq!(decode::bucket(&decode::hamt_hash(b"hello"), 8, 256), None);
    assert_eq!(decode::prefix_len(256), 2);
    assert_eq!(decode::prefix_len(16), 1);
    assert_eq!(decode::prefix_len(1024), 3);
}

#[test]
fn decodes_hand_built_nodes() {
    let hello = block_cid(RAW, BlockHash::Sha2_256, b"hello\n");
    let data = encode::unixfs(
        DataType::File,
        b"ab",
        Some(8),
        &[6],
        None,
        Some(0o750),
        Some((-5, 7)),
    );
    let block = encode::pb(&[(hello, "", 6)], &data);
    let cid = block_cid(DAG_PB, BlockHash::Sha2_256, &block);
    let Node::Pb { links, unixfs } = Node::decode(&cid, Bytes::from(block.clone())).unwrap() else {
        panic!("not dag-pb")
    };
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].cid, hello);
    assert_eq!(unixfs.kind, DataType::File);
    assert_eq!(&unixfs.data[..], b"ab");
    assert_eq!(unixfs.blocksizes, vec![6]);
    assert_eq!(unixfs.mode, Some(0o750));
    assert_eq!(unixfs.mtime, Some((-5, 7)));
    // Every truncation is an error, never a panic.
    for n in 0..block.len() {
        let _ = Node::decode(&cid, Bytes::copy_from_slice(&block[..n]));
    }
    // A raw CID takes the bytes as they are.
    assert_eq!(
        Node::decode(&hello, Bytes::from_static(b"x")).unwrap(),
        Node::Raw(Bytes::from_static(b"x"))
    );
}

#[test]
fn refuses_inconsistent_or_unsupported_nodes() {
    let leaf = block_cid(RAW, BlockHash::Sha2_256, b"x");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            encode::pb(
                &[(leaf, "", 1)],
                &encode::unixfs(DataType::File, b"", Some(2), &[1], None, None, None),
            ),
            "filesize",
        ),
        (
            encode::pb(
                &[(leaf, "", 1)],
                &encode::unixfs(DataType::File, b"", None, &[], None, None, None),
            ),
            "blocksizes",
        ),
        (
            encode::pb(
                &[],
                &encode::unixfs(DataType::Metadata, b"", None, &[], None, None, None),
            ),
            "Metadata",
        ),
        (
            encode::pb(
                &[],
                &encode::unixfs(DataType::HamtShard, b"", None, &[], Some(100), None, None),
            ),
            "fanout",
        ),
        (encode::pb(&[], &[0x08, 0x09]), "unknown UnixFS type"),
        (encode::pb(&[], &[]), "without a Type"),
        (b"\xff\xff\xff".to_vec(), "not dag-pb"),
    ];
    for (block, want) in cases {
        let cid = block_cid(DAG_PB, BlockHash::Sha2_256, &block);
        let err = Node::decode(&cid, Bytes::from(block)).unwrap_err();
        assert!(err.0.contains(want), "{err} (wanted {want})");
    }
    let cbor = Cid::new_v1(0x71, *leaf.hash());
    assert!(Node::decode(&cbor, Bytes::new()).is_err());
    let big = vec![0u8; decode::MAX_BLOCK + 1];
    assert!(
        Node::decode(&leaf, Bytes::from(big))
            .unwrap_err()
            .0
            .contains("limit")
    );
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let cid = block_cid(DAG_PB, BlockHash::Sha2_256, &bytes);
        let _ = Node::decode(&cid, Bytes::from(bytes.clone()));
        let _ = decode::decode_unixfs(&bytes);
    }
}

#[test]
fn reads_a_tree_of_files_dirs_and_symlinks() {
    let dag = Dag::new();
    let big = ware_test_kit::noise(1, 300_000);
    let (big_cid, big_len) = dag.file(&[&big[..100_000], &big[100_000..250_000], &big[250_000..]]);
    let small = dag.raw(b"hello\n");
    let empty = dag.raw(b"");
    let link = dag.put(
        DAG_PB,
        encode::pb(
            &[],
            &encode::unixfs(DataType::Symlink, b"../small", None, &[], None, None, None),
        ),
    );
    let moded = dag.put(
        DAG_PB,
        encode::pb(
            &[],
            &encode::unixfs(
                DataType::File,
                b"inline",
                None,
                &[],
                None,
                Some(0o600),
                Some((1_600_000_000, 5)),
            ),
        ),
    );
    let sub = dag.dir(&[("small", small)]);
    let root = dag.dir(&[
        ("big", big_cid),
        ("empty", empty),
        ("link", link),
        ("moded", moded),
        ("sub", sub),
        ("bad/name", small),
    ]);
    let t = dag.tree();
    let r = t.root(&root).unwrap();
    assert_eq!(r.kind, Kind::Dir);
    assert_eq!(r.mode, 0o755);
    let names: Vec<String> = t
        .list(&r)
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    assert_eq!(
        names,
        ["big", "empty", "link", "moded", "sub"],
        "a name with / is left out"
    );
    let big_e = t.lookup(&r, b"big").unwrap().unwrap();
    assert_eq!(
        (big_e.kind, big_e.size, big_e.mode),
        (Kind::File, big_len, 0o644)
    );
    for (off, len) in [
        (0u64, 300_000u32),
        (0, 1),
        (99_999, 2),
        (100_000, 150_000),
        (123, 250_000),
        (299_999, 100),
        (300_000, 5),
    ] {
        let got = t.read(&big_e, off, len).unwrap();
        let end = (off + u64::from(len)).min(big.len() as u64) as usize;
        assert_eq!(got, big[(off as usize).min(end)..end], "{off}+{len}");
    }
    let e = t.lookup(&r, b"empty").unwrap().unwrap();
    assert_eq!((e.size, t.read(&e, 0, 10).unwrap()), (0, vec![]));
    let l = t.lookup(&r, b"link").unwrap().unwrap();
    assert_eq!(
        (l.kind, l.target.as_deref().map(|t| &t[..])),
        (Kind::Symlink, Some(&b"../small"[..]))
    );
    let m = t.lookup(&r, b"moded").unwrap().unwrap();
    assert_eq!(
        (m.mode, m.mtime, m.mtime_nsec, m.size),
        (0o600, 1_600_000_000, 5, 6)
    );
    assert_eq!(t.read(&m, 2, 100).unwrap(), b"line");
    let s = t.lookup(&r, b"sub").unwrap().unwrap();
    let small_e = t.lookup(&s, b"small").unwrap().unwrap();
    assert_eq!(t.read(&small_e, 0, 100).unwrap(), b"hello\n");
    assert!(t.lookup(&r, b"nothing").unwrap().is_none());
    assert!(t.lookup(&r, b"bad/name").unwrap().is_none());
}

#[test]
fn reads_hamt_sharded_directories() {
    let dag = Dag::new();
    // 600 entries in a two-level HAMT of fanout 16 (a bucket of more than 40 entries becomes a
    // sub-shard), built the way go-unixfs and js-ipfs place names.
    let names: Vec<String> = (0..600).map(|i| format!("file-{i:04}")).collect();
    let cids: Vec<Cid> = names.iter().map(|n| dag.raw(n.as_bytes())).collect();
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); 16];
    for (i, n) in names.iter().enumerate() {
        let b = decode::bucket(&decode::hamt_hash(n.as_bytes()), 0, 16).unwrap();
        buckets[b as usize].push(i);
    }
    let shard = |links: Vec<(Cid, String)>| {
        let mut links = links;
        links.sort_by(|a, b| a.1.cmp(&b.1));
        let pl: Vec<(Cid, &str, u64)> = links
            .iter()
            .map(|(c, n)| (*c, n.as_str(), dag.tsize(c)))
            .collect();
        dag.put(
            DAG_PB,
            encode::pb(
                &pl,
                &encode::unixfs(
                    DataType::HamtShard,
                    b"bitfield",
                    None,
                    &[],
                    Some(16),
                    None,
                    None,
                ),
            ),
        )
    };
    let mut top = Vec::new();
    let mut subs = 0;
    for (b, members) in buckets.iter().enumerate() {
        if members.len() > 40 {
            let inner: Vec<(Cid, String)> = members
                .iter()
                .map(|&i| {
                    let b2 =
                        decode::bucket(&decode::hamt_hash(names[i].as_bytes()), 1, 16).unwrap();
                    (cids[i], format!("{b2:X}{}", names[i]))
                })
                .collect();
            // Buckets of the inner shard must be unique too: keep one entry per bucket.
            let mut seen = std::collections::HashSet::new();
            let inner: Vec<(Cid, String)> = inner
                .into_iter()
                .filter(|(_, n)| seen.insert(n[..1].to_string()))
                .collect();
            top.push((shard(inner), format!("{b:X}")));
            subs += 1;
        } else if let Some(&i) = members.first() {
            top.push((cids[i], format!("{b:X}{}", names[i])));
        }
    }
    assert!(subs > 0, "the test wants a sub-shard");
    let root = shard(top.clone());
    let t = dag.tree();
    let r = t.root(&root).unwrap();
    assert_eq!(r.kind, Kind::Dir);
    let listed = t.list(&r).unwrap();
    assert!(listed.windows(2).all(|w| w[0].name < w[1].name));
    assert!(!listed.is_empty());
    for e in &listed {
        let name = e.name.to_vec();
        let found = t
            .lookup(&r, &name)
            .unwrap()
            .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&name)));
        assert_eq!(t.read(&found, 0, 100).unwrap(), name);
    }
    // Names not in the directory: absent, whether their bucket is empty, a leaf or a shard.
    for n in ["nope", "file-9999", "file-0000x"] {
        if !listed.iter().any(|e| &e.name[..] == n.as_bytes()) {
            assert!(t.lookup(&r, n.as_bytes()).unwrap().is_none(), "{n}");
        }
    }
}

#[test]
fn damaged_or_missing_blocks_are_errors_naming_the_cid() {
    let dag = Dag::new();
    let data = ware_test_kit::noise(2, 50_000);
    let (file, _) = dag.file(&[&data[..20_000], &data[20_000..]]);
    let other = dag.raw(b"other");
    let root = dag.dir(&[("f", file), ("o", other)]);
    let leaf = block_cid(RAW, BlockHash::Sha2_256, &data[20_000..]);
    dag.store.damage_block(&leaf, b"not the leaf".to_vec());
    let t = dag.tree();
    let r = t.root(&root).unwrap();
    let f = t.lookup(&r, b"f").unwrap().unwrap();
    assert_eq!(
        t.read(&f, 0, 100).unwrap(),
        data[..100],
        "the first leaf is fine"
    );
    let err = t.read(&f, 19_000, 2_000).unwrap_err();
    assert!(
        matches!(err, Error::CorruptBlock { .. }) && err.to_string().contains(&leaf.to_string()),
        "{err}"
    );
    let o = t.lookup(&r, b"o").unwrap().unwrap();
    assert_eq!(t.read(&o, 0, 10).unwrap(), b"other");
    let missing = block_cid(DAG_PB, BlockHash::Sha2_256, b"never stored");
    assert!(t.root(&missing).unwrap_err().is_not_found());
    // A leaf shorter than its parent says: corrupt, never short data.
    let short = dag.raw(b"abc");
    let lying = dag.put(
        DAG_PB,
        encode::pb(
            &[(short, "", 3)],
            &encode::unixfs(DataType::File, b"", Some(4), &[4], None, None, None),
        ),
    );
    let root2 = dag.dir(&[("lying", lying)]);
    let r2 = t.root(&root2).unwrap();
    let l = t.lookup(&r2, b"lying").unwrap().unwrap();
    assert!(matches!(
        t.read(&l, 0, 4).unwrap_err(),
        Error::CorruptBlock { .. }
    ));
    // A sha2-512 CID cannot be verified: refused before anything is fetched.
    let mh = multihash::Multihash::<64>::wrap(0x13, &[0u8; 64]).unwrap();
    assert!(matches!(
        t.root(&Cid::new_v1(DAG_PB, mh)).unwrap_err(),
        Error::BadId(_)
    ));
}

#[test]
fn reads_cidv0_dag_pb_leaves() {
    let dag = Dag::new();
    let put_v0 = |bytes: Vec<u8>| {
        let v1 = dag.put(DAG_PB, bytes);
        Cid::new_v0(*v1.hash()).unwrap()
    };
    let leaf = put_v0(encode::pb(
        &[],
        &encode::unixfs(DataType::File, b"deep\n", Some(5), &[], None, None, None),
    ));
    let empty = put_v0(encode::pb(
        &[],
        &encode::unixfs(DataType::File, b"", Some(0), &[], None, None, None),
    ));
    let data = encode::unixfs(DataType::Directory, b"", None, &[], None, None, None);
    let root = put_v0(encode::pb(
        &[(leaf, "deep.txt", 13), (empty, "empty", 6)],
        &data,
    ));
    let t = dag.tree();
    let r = t.root(&root).unwrap();
    let listed = t.list(&r).unwrap();
    assert_eq!(listed.iter().map(|e| e.size).collect::<Vec<_>>(), [5, 0]);
    let d = t.lookup(&r, b"deep.txt").unwrap().unwrap();
    assert_eq!(t.read(&d, 0, 100).unwrap(), b"deep\n");
}
