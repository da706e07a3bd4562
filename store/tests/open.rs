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
