//! Warehouse catalogs over a directory warehouse, at scale: ten thousand pushes fold into
//! three pages that a reader gets in a handful of requests; a later push rewrites one page;
//! folded pushes and replaced pages go once their hour has passed.

use bytes::Bytes;
use ware_fetchers::catalog::{fold, read, record};
use ware_fetchers::{FetchOptions, open};
use ware_store::NodeId;
use ware_store::catalog::{Entry, Head, Push, push_key};

fn entry(k: u64, at: u64) -> Entry {
    Entry {
        ware: NodeId::of(&k.to_le_bytes()).0,
        bytes: k,
        entries: 1,
        at,
        names: Vec::new(),
    }
}

fn count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ten_thousand_pushes_list_in_a_few_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().display());
    let wh = open(&url, &FetchOptions::default()).unwrap();
    let t = 1_800_000_000;
    for k in 0..10_000u64 {
        let p = Push::new(entry(k, t));
        wh.put(&push_key(t, k), Bytes::from(p.encode())).unwrap();
    }
    fold(&*wh, t).unwrap();
    let head = Head::decode(&wh.get("catalog/head").unwrap()).unwrap();
    assert_eq!(
        head.pages.len(),
        3,
        "10,000 wares in pages of at most 4,096"
    );
    assert_eq!(head.folded.len(), 10_000);
    let l = read(&*wh).unwrap();
    assert_eq!(l.wares.len(), 10_000);
    // The head, its three pages, and the listing of unfolded pushes.
    assert_eq!(l.requests, 5, "{}", l.requests);

    // One more push rewrites the one page its ID falls in.
    let pages = tmp.path().join("catalog/pages");
    assert_eq!(count(&pages), 3);
    record(&*wh, entry(20_000, t + 10), t + 10).unwrap();
    assert_eq!(
        count(&pages),
        4,
        "one page replaced, kept for readers of the old head"
    );
    assert_eq!(read(&*wh).unwrap().wares.len(), 10_001);

    // Two hours on, a fold removes the folded pushes and the replaced page.
    record(&*wh, entry(20_001, t + 7200), t + 7200).unwrap();
    fold(&*wh, t + 7200).unwrap();
    assert_eq!(
        count(&pages),
        4,
        "the page replaced at the hour's start is gone, a new one came"
    );
    assert!(count(&tmp.path().join("catalog/pushes")) <= 2);
    let l = read(&*wh).unwrap();
    assert_eq!(l.wares.len(), 10_002, "nothing was lost with them");
}
