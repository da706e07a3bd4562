//! fsck tells a partly cached ware (pieces not fetched yet: fine) from a complete one that
//! lacks pieces or holds damaged ones (corrupt), on a real RocksDB store.

use ware_store::db::{Damage, Store};
use ware_store::pack::{NoProgress, PackOptions, pack_dir};
use ware_store::{BlockSink, BlockSource, NodeId};

fn tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("d")).unwrap();
    std::fs::write(dir.join("d/f"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("small"), b"tiny").unwrap();
}

#[test]
fn partial_wares_are_not_corrupt_but_damaged_pieces_are() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let full = Store::open(&tmp.path().join("full")).unwrap();
    let report = pack_dir(&full, &src, &PackOptions::default(), &NoProgress).unwrap();
    let fsck = ware_store::fsck::fsck(&full, &NoProgress).unwrap();
    assert!(fsck.is_clean() && fsck.wares_checked == 1, "{fsck:?}");

    // A second store holds only the root node, as a lazy mount would after the first lookup.
    let cache = Store::open(&tmp.path().join("cache")).unwrap();
    let root = full.node(&report.id).unwrap();
    cache.put_nodes(&[(report.id, root)]).unwrap();
    cache.mark_partial(&report.id).unwrap();
    let fsck = ware_store::fsck::fsck(&cache, &NoProgress).unwrap();
    assert!(
        fsck.is_clean(),
        "a partly cached ware is not damage: {fsck:?}"
    );
    assert_eq!(fsck.partial_wares_checked, 1);
    assert!(
        fsck.not_yet_fetched >= 1,
        "the missing directory node counts as not fetched yet"
    );
    assert!(fsck.missing.is_empty());

    // Damage in a partly cached ware is still damage.
    cache.damage(Damage::Node(report.id)).unwrap();
    let fsck = ware_store::fsck::fsck(&cache, &NoProgress).unwrap();
    assert!(!fsck.is_clean());
    assert!(
        fsck.corrupt
            .iter()
            .any(|c| c.contains(&report.id.to_string())),
        "{fsck:?}"
    );

    // A ware recorded complete that lacks a piece is reported missing, naming the ware.
    let lacking = Store::open(&tmp.path().join("lacking")).unwrap();
    lacking
        .put_nodes(&[(report.id, full.node(&report.id).unwrap())])
        .unwrap();
    lacking.commit_ware(&report.id, &report.record).unwrap();
    let fsck = ware_store::fsck::fsck(&lacking, &NoProgress).unwrap();
    assert!(!fsck.is_clean());
    assert!(
        fsck.missing
            .iter()
            .any(|m| m.contains(&report.id.to_string())),
        "{fsck:?}"
    );
}

#[test]
fn reopening_keeps_every_ware_and_refuses_foreign_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let dir = tmp.path().join("store");
    let id: NodeId = {
        let s = Store::open(&dir).unwrap();
        pack_dir(&s, &src, &PackOptions::default(), &NoProgress)
            .unwrap()
            .id
    };
    for _ in 0..5 {
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.wares().unwrap().len(), 1);
        assert!(s.ware(&id).unwrap().is_some());
        assert!(ware_store::fsck::fsck(&s, &NoProgress).unwrap().is_clean());
    }
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), b"mine").unwrap();
    let err = Store::open(&foreign)
        .err()
        .expect("a non-store directory must be refused")
        .to_string();
    assert!(err.contains("not a ware store"), "{err}");
    assert_eq!(
        std::fs::read(foreign.join("precious.txt")).unwrap(),
        b"mine"
    );
}
