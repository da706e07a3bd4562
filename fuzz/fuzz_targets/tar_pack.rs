//! Any byte stream given to `ware pack -` gives a ware or an error: no panic, no hang, no
//! unbounded allocation; and a ware it gives unpacks-free checks: its root reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ware_store::pack::{NoProgress, PackOptions, pack_tar};
use ware_store::{MemStore, Reader};

fuzz_target!(|data: &[u8]| {
    let store = MemStore::new();
    let mut input: &[u8] = data;
    if let Ok(report) = pack_tar(&store, &mut input, &PackOptions::default(), &NoProgress) {
        let reader = Reader::new(&store);
        let root = reader.root(&report.id).expect("a packed ware has a root");
        reader.list(&root).expect("a packed ware lists");
    }
});
