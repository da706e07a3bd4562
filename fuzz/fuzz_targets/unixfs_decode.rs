//! Any bytes given as a UnixFS block (from an IPFS node, a gateway, or a damaged store) decode
//! to a node whose shape the reader can rely on, or to an error: never a panic, and never more
//! memory than a small multiple of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ware_fetchers::unixfs::decode::{DataType, Node, decode_unixfs};
use ware_fetchers::{BlockHash, DAG_PB, RAW, block_cid};

fuzz_target!(|data: &[u8]| {
    let _ = decode_unixfs(data);
    let cid = block_cid(DAG_PB, BlockHash::Sha2_256, data);
    if let Ok(Node::Pb { links, unixfs }) = Node::decode(&cid, data.to_vec().into()) {
        if matches!(unixfs.kind, DataType::File | DataType::Raw) {
            assert_eq!(links.len(), unixfs.blocksizes.len());
        }
        assert!(unixfs.kind != DataType::Metadata);
    }
    let raw = block_cid(RAW, BlockHash::Sha2_256, data);
    assert!(matches!(Node::decode(&raw, data.to_vec().into()), Ok(Node::Raw(_)) | Err(_)));
});
