//! Opening a store: one being made by another process is "in use", not "no store".

use std::os::fd::AsFd;

use ware_store::Error;
use ware_store::db::Store;

#[test]
fn a_store_being_created_is_in_use_not_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    // Another opener holds the lock and has not made the database yet.
    let lock = std::fs::File::create(dir.join("ware.lock")).unwrap();
    rustix::fs::flock(
        lock.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    match Store::open_existing(&dir) {
        Err(Error::Busy { .. }) => {}
        other => panic!("expected Busy, got {:?}", other.map(|_| ())),
    }
    // Its maker stopped before the database existed: a reader finds no store, and makes none.
    drop(lock);
    match Store::open_existing(&dir) {
        Err(Error::NoStore { .. }) => {}
        other => panic!("expected NoStore, got {:?}", other.map(|_| ())),
    }
    assert!(!dir.join("CURRENT").exists(), "a reader created a store");
    // A writer still opens it.
    Store::open(&dir).unwrap();
}

/// Each open of a store used to flush the log the last process left into new tables (with
/// their fsyncs, on the path of every cold command). Now a store is written out when it
/// closes: reopened many times, it keeps every write, and neither logs nor tables pile up.
#[test]
fn reopening_keeps_every_write_and_piles_up_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let id: ware_store::id::WareId = "bafyr4igtae3t43pkrwwpeubebyutpdi3uxxpwn6j7q6367ejyyw7janq5q"
        .parse()
        .unwrap();
    let count = |ext: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    for i in 0..40 {
        let store = Store::open(&dir).unwrap();
        store.set_name(&format!("n{i}"), Some(&id)).unwrap();
        drop(store);
        assert!(count("log") <= 1, "open {i}: {} logs", count("log"));
    }
    let store = Store::open(&dir).unwrap();
    for i in 0..40 {
        assert_eq!(store.name(&format!("n{i}")).unwrap(), Some(id), "n{i} lost");
    }
    drop(store);
    // One table per close of the names family at most; compaction keeps the level-0 count down.
    assert!(count("sst") <= 12, "{} tables after 41 opens", count("sst"));
}
