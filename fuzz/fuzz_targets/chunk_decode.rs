//! Stored chunk bytes decode only to bytes with the asked-for hash, within the size bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ware_store::ChunkId;
use ware_store::chunk::{MAX_CHUNK, decode_chunk};

fuzz_target!(|data: &[u8]| {
    // Ask for the hash of the payload as if it were raw: whatever decodes must match it.
    let id = ChunkId::of(data.get(1..).unwrap_or_default());
    if let Ok(out) = decode_chunk(id, data) {
        assert!(out.len() <= MAX_CHUNK);
        assert_eq!(ChunkId::of(&out), id);
    }
});
